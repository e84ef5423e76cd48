#!/usr/bin/env python
"""Eval latency of backbone variants at several input sizes.

    python tools/analysis/benchmark.py --backbone CastlingViT \\
        --archs xs s m --sizes 256 512 1024 --threads 2

For each variant: parameters, and the median (with min and max) of
``--repeat`` timed eval forwards after ``--warmup`` untimed ones, batch
``--batch``, on ``--device`` with ``--threads`` CPU threads. The last column
is t(largest size) / t(second largest): about the pixel ratio for a cost
linear in the number of tokens (4 for 512 -> 1024), approaching its square
for quadratic attention. Prints a markdown table; ``--out`` also writes it.
"""
import argparse
import statistics
import sys
import time
import os.path as osp

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--backbone', required=True,
                        help='a backbone class of mmvit.models, e.g. '
                        'CastlingViT, CASViT, CMT, EfficientViT')
    parser.add_argument('--archs', nargs='+', required=True)
    parser.add_argument('--sizes', nargs='+', type=int,
                        default=[256, 512, 1024],
                        help='square input sizes (pixels per side)')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out', help='also write the table to this file')
    return parser.parse_args()


def time_forward(model, size, args):
    x = torch.rand(args.batch, 3, size, size, device=args.device)
    sync = (torch.cuda.synchronize if args.device.startswith('cuda') else
            (lambda: None))
    times = []
    with torch.no_grad():
        for i in range(args.warmup + args.repeat):
            sync()
            start = time.perf_counter()
            model(x)
            sync()
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
    return times


def main():
    args = parse_args()
    import mmvit.models as models
    backbone = getattr(models, args.backbone, None)
    if backbone is None:
        sys.exit(f'benchmark: unknown --backbone {args.backbone!r}; '
                 f'mmvit.models has {sorted(models.__all__)}')
    torch.set_num_threads(args.threads)
    sizes = sorted(args.sizes)
    header = ['variant', 'params (M)'] + [f'{s}x{s} ms (min-max)'
                                          for s in sizes]
    if len(sizes) > 1:
        header.append(f't({sizes[-1]}^2)/t({sizes[-2]}^2)')
    rows = []
    for arch in args.archs:
        model = backbone(arch=arch).to(args.device).eval()
        params = sum(p.numel() for p in model.parameters()) / 1e6
        medians, cells = [], []
        for size in sizes:
            times = [t * 1000 for t in time_forward(model, size, args)]
            medians.append(statistics.median(times))
            cells.append(f'{medians[-1]:.1f} ({min(times):.1f}-'
                         f'{max(times):.1f})')
        row = [arch, f'{params:.2f}'] + cells
        if len(sizes) > 1:
            row.append(f'{medians[-1] / medians[-2]:.2f}')
        rows.append(row)
        print(f'{args.backbone} {arch}: ' + ', '.join(
            f'{s}: {m:.1f} ms' for s, m in zip(sizes, medians)), flush=True)
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    table = '\n'.join(lines)
    note = (f'\n{args.backbone}, eval forward, batch {args.batch}, '
            f'{args.device}, {args.threads} threads, median of '
            f'{args.repeat} after {args.warmup} warm-up; torch '
            f'{torch.__version__}')
    print('\n' + table + note)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table + note + '\n')


if __name__ == '__main__':
    main()
