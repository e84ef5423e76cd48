#!/usr/bin/env python
"""Time and peak memory of training steps of a backbone or a model.

Each step runs under each setting, interleaved:

    # activation checkpointing at the detection size
    python tools/analysis/train_benchmark.py --backbone CASViT --archs s \\
        --size 800x1333 --batch 2 --settings eager with_cp
    # the classifier's step: channels-last, fused AdamW, torch.compile
    python tools/analysis/train_benchmark.py --backbone EfficientViT \\
        --archs m4 --size 224 --batch 16 \\
        --settings eager channels_last fused_adamw compile
    # a config's whole train step, eager and as compile=True makes it
    python tools/analysis/train_benchmark.py \\
        --config configs/cas_vit/retinanet_cas_vit_xs.py --size 800x1344 --batch 2

What a step and each setting are: mmvit.analysis.train_benchmark.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

from mmvit.analysis.benchmark import size_arg  # noqa: E402
from mmvit.analysis.train_benchmark import (  # noqa: E402
    CONFIG_SETTINGS, SETTINGS, run, setting_arg)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--backbone',
                        help='a registered mmvit backbone, e.g. CASViT')
    parser.add_argument('--archs', nargs='+')
    parser.add_argument('--config',
                        help='instead of a backbone: the whole model of a '
                        'config, its train step on a synthetic batch '
                        f'(settings {" and ".join(CONFIG_SETTINGS)})')
    parser.add_argument('--size', type=size_arg, default=(224, 224),
                        help='input HEIGHTxWIDTH (or one side)')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--settings', nargs='+', type=setting_arg,
                        help='default: eager with_cp (eager compile with '
                        '--config); '
                        f'each one of {", ".join(SETTINGS)} or several '
                        'joined by "+" (e.g. channels_last+fused_adamw); '
                        'the first is the reference of the ratios')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2,
                        help='steps before timing (>= 1; compile needs 2)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--no-memory', action='store_true',
                        help='skip the peak-memory measurement')
    parser.add_argument('--malloc-tuning', action='store_true',
                        help='keep freed CPU memory in glibc (see '
                        'mmvit.analysis.benchmark.tune_glibc_malloc)')
    parser.add_argument('--out', help='also write the table to this file')
    args = parser.parse_args(argv)
    if args.batch < 1 or args.repeat < 1 or args.warmup < 1:
        parser.error('--batch, --repeat and --warmup must be >= 1')
    if (args.config is None) == (args.backbone is None) or \
            (args.backbone is not None) != (args.archs is not None):
        parser.error('give --backbone with --archs, or --config')
    if args.settings is None:
        args.settings = list(CONFIG_SETTINGS) if args.config else \
            ['eager', 'with_cp']
    if args.config and not set(args.settings) <= set(CONFIG_SETTINGS):
        parser.error(f'--config runs the settings '
                     f'{", ".join(CONFIG_SETTINGS)}; got '
                     f'{" ".join(args.settings)}')
    if args.config and args.device != 'cpu':
        parser.error('--config measures on the CPU only')
    if len(set(args.settings)) != len(args.settings):
        parser.error('--settings lists a setting twice')
    return args


def main(argv=None):
    return run(parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
