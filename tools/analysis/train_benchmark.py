#!/usr/bin/env python
"""Time and peak memory of training steps of a backbone, per setting.

    # activation checkpointing at the detection size
    python tools/analysis/train_benchmark.py --backbone CASViT --archs s \\
        --size 800x1333 --batch 2 --settings eager with_cp
    # the classifier's step: channels-last, fused AdamW, torch.compile
    python tools/analysis/train_benchmark.py --backbone EfficientViT \\
        --archs m4 --size 224 --batch 16 \\
        --settings eager channels_last fused_adamw compile

What a step and each setting are: mmvit.analysis.train_benchmark.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

from mmvit.analysis.benchmark import size_arg  # noqa: E402
from mmvit.analysis.train_benchmark import (  # noqa: E402
    SETTINGS, run, setting_arg)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--backbone', required=True,
                        help='a registered mmvit backbone, e.g. CASViT')
    parser.add_argument('--archs', nargs='+', required=True)
    parser.add_argument('--size', type=size_arg, default=(224, 224),
                        help='input HEIGHTxWIDTH (or one side)')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--settings', nargs='+', type=setting_arg,
                        default=['eager', 'with_cp'],
                        help=f'each one of {", ".join(SETTINGS)} or several '
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
    if len(set(args.settings)) != len(args.settings):
        parser.error('--settings lists a setting twice')
    return args


def main(argv=None):
    return run(parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
