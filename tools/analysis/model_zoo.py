#!/usr/bin/env python
"""The model zoo table: every backbone variant, measured and as published.

    python tools/analysis/model_zoo.py --threads 2 --repeat 3 \\
        --out work_dirs/model_zoo.md --plot work_dirs/model_zoo.png \\
        [--readme README.md]

For each variant of CAS-ViT, CMT, EfficientViT and Castling-ViT (17; see
``--families`` and ``--variants`` to restrict): the backbone's parameters
and GFLOPs at 224x224, its CPU eval latency at 224x224 and 800x1216 (H x W;
batch 1, ``--threads`` threads, median and range of ``--repeat`` runs after
``--warmup``, the two sizes alternating), the parameters and GFLOPs of the
RetinaNet and Mask R-CNN detectors of ``configs/`` at 800x1280 (H x W: the
papers' 1280x800 image; whole detector, tensor forward without
post-processing), and the ImageNet / COCO / ADE20K numbers the papers (or
official model zoos) report, in columns marked "paper". It uses the
functions of ``mmvit.analysis.benchmark`` (see there for what is
measured and how). A model that fails gets an error mark in its row and a
note; the run goes on.

``--out`` writes the markdown (table and notes); ``--readme FILE`` replaces
the text between the lines ``<!-- model-zoo:start -->`` and
``<!-- model-zoo:end -->`` of FILE with it.
"""
import argparse
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

from mmvit.analysis import benchmark as bench  # noqa: E402
from mmvit.analysis.model_zoo import (DETECTORS, END, START,  # noqa: E402
                                      replace_between_markers, run, select)
from mmvit.analysis.whole_models import END as WHOLE_END  # noqa: E402
from mmvit.analysis.whole_models import START as WHOLE_START  # noqa: E402
from mmvit.families import families  # noqa: E402

FAMILIES = list(families())


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--families', nargs='+', choices=FAMILIES, default=FAMILIES)
    parser.add_argument('--variants', nargs='+',
                        help='only these variants: a name (e.g. m0, xs) '
                        'or family:name (e.g. cmt:xs)')
    parser.add_argument('--sizes', nargs='+', type=bench.size_arg,
                        default=[(224, 224), (800, 1216)], metavar='SIZE',
                        help='latency input sizes, S or HxW (height x '
                        'width). Default 224 800x1216')
    parser.add_argument('--flops-size', type=bench.size_arg,
                        default=(224, 224), metavar='SIZE',
                        help='backbone FLOPs input (HxW). Default 224')
    parser.add_argument('--det-size', type=bench.size_arg,
                        default=(800, 1280), metavar='SIZE',
                        help='detector FLOPs input (HxW). Default 800x1280 '
                        '(the papers\' 1280x800 landscape image)')
    parser.add_argument('--detectors', nargs='*', choices=list(DETECTORS),
                        default=list(DETECTORS),
                        help='detector configs to count (none: skip)')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--device', default='cpu', help='cpu, cuda, cuda:N')
    parser.add_argument('--deploy', action='store_true',
                        help='also time the deployed backbones '
                        '(mmvit.deploy.switch_to_deploy), interleaved')
    parser.add_argument('--configs-dir', default=osp.join(ROOT, 'configs'))
    parser.add_argument('--out', help='write the markdown here')
    parser.add_argument('--readme', help='replace the text between the '
                        f'{START} and {END} lines of this file')
    parser.add_argument('--plot', help='PNG of latency against input pixels')
    parser.add_argument('--no-malloc-tuning', action='store_true')
    parser.add_argument('--whole-models', action='store_true',
                        help='instead: RetinaNet, Mask R-CNN, Semantic FPN '
                        'and UperNet of every variant and of ResNet-50, '
                        'latency and GFLOPs (mmvit.analysis.whole_models; '
                        '--readme fills the whole-models markers)')
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.threads < 1 or args.warmup < 0:
        parser.error('--repeat and --threads must be >= 1, --warmup >= 0')
    if args.readme:  # fail now, not after the measurements
        if not osp.isfile(args.readme):
            parser.error(f'--readme {args.readme!r}: no such file')
        with open(args.readme) as f:
            markers = (WHOLE_START, WHOLE_END) if args.whole_models else \
                (START, END)
            try:
                replace_between_markers(f.read(), '', *markers)
            except ValueError as error:
                parser.error(f'--readme {args.readme!r}: {error}')
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        select(args.families, args.variants)
        return run(args)
    except ValueError as error:
        raise SystemExit(str(error))


if __name__ == '__main__':
    main()
