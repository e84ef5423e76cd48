#!/usr/bin/env python
"""Generate the small built-in datasets (COCO, ADE20K and ImageNet layouts;
what they hold: mmvit.datasets.toy_data).

    python tools/make_toy_data.py --task coco --out data/toy_coco
    python tools/make_toy_data.py --task ade --out data/toy_ade
    python tools/make_toy_data.py --task imagenet --out data/toy_imagenet
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmvit.datasets.toy_data import DEFAULT_SIZES, WRITERS  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--task', choices=sorted(WRITERS), default='coco',
                        help='dataset layout to write')
    parser.add_argument('--out', help='output folder (default: data/toy_<task>)')
    parser.add_argument('--num-train', type=int,
                        help='training images (coco 400, ade 200, '
                        'imagenet 400)')
    parser.add_argument('--num-val', type=int,
                        help='validation images (coco 100, ade 50, '
                        'imagenet 100)')
    parser.add_argument('--size', type=int,
                        help='image side in pixels (default 128; '
                        'imagenet 64)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    out = args.out or osp.join('data', f'toy_{args.task}')
    num_train, num_val, size = DEFAULT_SIZES[args.task]
    files = WRITERS[args.task](
        out, args.num_train or num_train, args.num_val or num_val,
        args.size or size, args.seed)
    for split, path in files.items():
        print(f'{split}: {path}')


if __name__ == '__main__':
    main()
