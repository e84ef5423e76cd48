#!/usr/bin/env python
"""Eval latency (batch 1, interleaved) and parameters of YOLOv8 with and
without cascaded group attention at one input size, as a Markdown table.

    python projects/yolov8_cga/tools/benchmark.py --models yolov8s yolov8s-cga --size 640
"""
import argparse
import os.path as osp
import sys

# the project's package, and mmvit of this checkout
PROJECT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path[:0] = [PROJECT, osp.dirname(osp.dirname(PROJECT))]


def parse_args(argv=None):
    from yolov8_cga import CGA_MODELS, PLAIN_MODELS
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', nargs='+',
                        default=['yolov8s', 'yolov8s-cga'],
                        choices=PLAIN_MODELS + CGA_MODELS)
    parser.add_argument('--size', type=int, default=640)
    parser.add_argument('--repeat', type=int, default=10)
    parser.add_argument('--threads', type=int,
                        help='torch threads (default: torch\'s choice)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    from yolov8_cga.compare import benchmark
    rows = benchmark(args.models, args.size, args.repeat)
    print(f'\n{args.size}x{args.size}, batch 1, eval, {torch.get_num_threads()}'
          f' threads, median of {args.repeat} (min-max)\n')
    print('| model | params (M) | latency (ms) | vs first |')
    print('|---|---|---|---|')
    base = rows[0]['ms'][0]
    for r in rows:
        median, low, high = r['ms']
        print(f"| {r['model']} | {r['params'] / 1e6:.2f} | {median:.1f} "
              f"({low:.1f}-{high:.1f}) | {median / base:.2f}x |")


if __name__ == '__main__':
    main()
