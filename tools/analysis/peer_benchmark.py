#!/usr/bin/env python
"""mmvit's classifiers against the official code and timm, interleaved in
one process: eval latency (eager, deployed, onnxruntime) or training steps.

    git clone https://github.com/Tianfang-Zhang/CAS-ViT peers/CAS-ViT
    git clone https://github.com/huawei-noah/Efficient-AI-Backbones \\
        peers/Efficient-AI-Backbones
    git clone https://github.com/microsoft/Cream peers/Cream
    python tools/analysis/peer_benchmark.py --official-root peers \\
        --families efficientvit --sizes 0 512
    python tools/analysis/peer_benchmark.py --official-root peers \\
        --mode training --families cas_vit --archs xs --batch 16 \\
        --settings eager channels_last+fused_adamw

Size 0 is each variant's classification resolution (CMT: 160, 192, 224,
256; the others 224). The official repositories are not part of mmvit;
their model files are imported from the clones (they need timm and einops).
onnxruntime runs the official model exported at each size and mmvit's
deployed model exported with dynamic sizes (its shipped CPU route).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

from mmvit.analysis.peers import OFFICIAL, run  # noqa: E402
from mmvit.analysis.train_benchmark import setting_arg  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--official-root', required=True,
                        help='a folder holding clones of the official '
                        'repositories')
    parser.add_argument('--mode', choices=('inference', 'training'),
                        default='inference')
    parser.add_argument('--families', nargs='+', choices=tuple(OFFICIAL),
                        default=list(OFFICIAL))
    parser.add_argument('--archs', nargs='+',
                        help='variants (default: every one of each family); '
                        'family:arch for one family only, e.g. cmt:ti')
    parser.add_argument('--sizes', nargs='+', type=int, default=[0, 512],
                        help='square input sides; 0: the classification '
                        'resolution')
    parser.add_argument('--batch', type=int, default=16,
                        help='training batch (inference runs batch 1)')
    parser.add_argument('--settings', nargs='+', type=setting_arg,
                        default=['eager', 'channels_last+fused_adamw'],
                        help="mmvit's training settings (see "
                        'tools/analysis/train_benchmark.py)')
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 2],
                        help='CPU threads of torch and onnxruntime; the '
                        'inference table has a row for each (training: '
                        'the first)')
    parser.add_argument('--compile', action='store_true',
                        help='inference: also time the official model '
                        'under torch.compile (minutes of compilation per '
                        'variant and size)')
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--no-memory', action='store_true',
                        help='skip the peak-memory measurement (training)')
    parser.add_argument('--out', help='also write the table to this file')
    parser.add_argument('--readme', help='also write it between the '
                        '"<!-- peers-MODE:start -->" and "<!-- peers-MODE:'
                        'end -->" lines of this file (e.g. README.md)')
    args = parser.parse_args(argv)
    if not osp.isdir(args.official_root):
        parser.error(f'--official-root {args.official_root}: no such folder')
    if args.batch < 1 or args.repeat < 1 or args.warmup < 1 or \
            min(args.threads) < 1:
        parser.error('--batch, --repeat, --warmup and --threads must be '
                     '>= 1')
    if any(s < 0 for s in args.sizes):
        parser.error('--sizes must be >= 0')
    return args


def main(argv=None):
    return run(parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
