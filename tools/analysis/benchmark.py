#!/usr/bin/env python
"""Parameters, FLOPs, eval latency and peak memory of models.

    # backbone variants (a registered mmvit backbone and its arch names)
    python tools/analysis/benchmark.py --backbone CastlingViT \\
        --archs xs s m --sizes 256 512 1024 --threads 2
    # whole models (detector, segmentor, classifier) from configs
    python tools/analysis/benchmark.py \\
        --config configs/efficientvit/retinanet_efficientvit_m4.py \\
        --sizes 512 800x1216 --flops-size 800x1280

Sizes are HEIGHT x WIDTH. What each column measures: mmvit.analysis.benchmark
and docs/benchmark.md.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

from mmvit.analysis.benchmark import (SIZE_HELP, size_arg,  # noqa: E402
                                      parse_flops_size, run)


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        epilog='Sizes are height x width. See the module docstring for what '
        'each column measures.')
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument('--backbone',
                      help='a backbone class of mmvit.models, e.g. '
                      'CastlingViT, CASViT, CMT, EfficientViT (with --archs)')
    what.add_argument('--config', nargs='+', metavar='CONFIG',
                      help='config files; their whole models are built '
                      'through the registries and their tensor forward timed')
    parser.add_argument('--archs', nargs='+', help='arch names of --backbone')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of every --config, key=value')
    parser.add_argument('--sizes', nargs='+', type=size_arg,
                        default=[(256, 256), (512, 512), (1024, 1024)],
                        metavar='SIZE', help=f'input sizes: {SIZE_HELP}')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--threads', type=int, default=2,
                        help='torch CPU threads')
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--device', default='cpu',
                        help='cpu, cuda or cuda:N')
    parser.add_argument('--amp', action='store_true',
                        help='torch.autocast: bfloat16 on CPU, float16 on '
                        'CUDA')
    parser.add_argument('--channels-last', action='store_true',
                        help='channels-last model and inputs')
    parser.add_argument('--out', help='also write the table to this file')
    parser.add_argument('--plot', help='write a PNG of latency against '
                        'input pixels, one line per model')
    parser.add_argument('--flops-size', nargs='+', default=['224'],
                        metavar='SIZE',
                        help='input of the FLOPs column (one image): S, HxW '
                        'or H W (height, width); 0 skips it. Default 224')
    deploy = parser.add_mutually_exclusive_group()
    deploy.add_argument('--deploy', action='store_true',
                        help='time the deployed model '
                        '(mmvit.deploy.switch_to_deploy)')
    deploy.add_argument('--compare-deploy', action='store_true',
                        help='time the eval and the deployed model, '
                        'interleaved, with a speed-up column')
    parser.add_argument('--compare-onnxruntime', action='store_true',
                        help='also time the deployed model exported to ONNX '
                        '(dynamic sizes) in onnxruntime, interleaved, with a '
                        'speed-up column (outputs checked within 1e-4 '
                        'first)')
    parser.add_argument('--compare-compile', action='store_true',
                        help='time the eval model and torch.compile of it, '
                        'interleaved, with a speed-up column (outputs '
                        'checked equal within 1e-4 first)')
    parser.add_argument('--no-memory', action='store_true',
                        help='skip the CPU peak-memory forward')
    parser.add_argument('--no-malloc-tuning', action='store_true',
                        help='keep glibc malloc defaults (see '
                        'tune_glibc_malloc)')
    args = parser.parse_args(argv)
    if args.backbone and not args.archs:
        parser.error('--backbone needs --archs')
    if args.config and args.archs:
        parser.error('--archs goes with --backbone, not --config')
    for name in ('batch', 'threads', 'repeat'):
        if getattr(args, name) < 1:
            parser.error(f'--{name} must be at least 1')
    if args.warmup < 0:
        parser.error('--warmup must be at least 0')
    try:
        args.flops_size = parse_flops_size(args.flops_size)
    except ValueError as error:
        parser.error(str(error))
    for path in args.config or ():
        if not osp.isfile(path):
            parser.error(f'--config {path!r}: no such file')
    return args


def main(argv=None):
    return run(parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
