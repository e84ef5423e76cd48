#!/usr/bin/env python
"""Eval latency of backbone variants at several input sizes.

    python tools/analysis/benchmark.py --backbone CastlingViT \\
        --archs xs s m --sizes 256 512 1024 --threads 2

For each variant: parameters, multiply-adds at ``--flops-size`` (counted by
mmengine.analysis; 0.302 G for EfficientViT-m4 at 224), and the median
(with min and max) of ``--repeat`` timed eval forwards after ``--warmup``
untimed ones (the sizes alternate within each repeat), batch ``--batch``,
on ``--device`` with ``--threads`` CPU threads; images per second at the
smallest size; on CUDA the peak memory of one forward at the largest. The
last column
is t(largest size) / t(second largest): about the pixel ratio for a cost
linear in the number of tokens (4 for 512 -> 1024), approaching its square
for quadratic attention. On CPU, glibc malloc is first told to keep freed
memory (see ``tune_glibc_malloc``; ``--no-malloc-tuning`` to measure the
defaults). Prints a markdown table; ``--out`` also writes it.
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
    parser.add_argument('--plot', help='write a PNG of latency against '
                        'input pixels, one line per variant')
    parser.add_argument('--flops-size', type=int, default=224,
                        help='input side for the FLOPs column (mmengine.'
                        'analysis; multiply-adds); 0 skips it')
    parser.add_argument('--deploy', action='store_true',
                        help='time the deployed model '
                        '(mmvit.deploy.switch_to_deploy)')
    parser.add_argument('--no-malloc-tuning', action='store_true',
                        help='keep glibc malloc defaults (see below)')
    return parser.parse_args()


def tune_glibc_malloc():
    """Keep freed CPU memory for reuse instead of returning it to the OS.

    By default glibc serves blocks above 32 MB with fresh mmap()s and trims
    the heap, so every forward at a large input page-faults its biggest
    tensors anew; on this kind of machine that costs as much as the maths
    and makes large inputs look superlinear. CPU inference deployments use a
    caching allocator (jemalloc, tcmalloc) for this reason; here glibc is
    told not to use mmap and not to trim (mallopt M_MMAP_MAX=0,
    M_TRIM_THRESHOLD=2^30). Returns False where glibc is not available.
    """
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c'))
        m_trim_threshold, m_mmap_max = -1, -4
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(
            libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):
        return False


def count_flops(model, size):
    """Multiply-adds of one forward at ``size`` x ``size`` (mmengine)."""
    import logging

    from mmengine.analysis import get_model_complexity_info
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)  # unsupported-operator notes
    try:
        info = get_model_complexity_info(model, input_shape=(3, size, size),
                                         show_table=False, show_arch=False)
    finally:
        logger.setLevel(level)
    return info['flops']


def time_forwards(model, sizes, args):
    """Per size, the timed forwards (and, on CUDA, the peak memory of one
    forward). Sizes alternate within every repeat, so slow drifts of a
    shared machine affect all sizes alike."""
    cuda = args.device.startswith('cuda')
    inputs = {s: torch.rand(args.batch, 3, s, s, device=args.device)
              for s in sizes}
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    times = {s: [] for s in sizes}
    peaks = {}
    with torch.no_grad():
        for i in range(args.warmup + args.repeat):
            for size in sizes:
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
                sync()
                start = time.perf_counter()
                model(inputs[size])
                sync()
                if i >= args.warmup:
                    times[size].append(time.perf_counter() - start)
                if cuda:
                    peaks[size] = torch.cuda.max_memory_allocated() / 2**20
    return times, peaks


def plot(results, args):
    """Latency (ms) against input pixels, one line per variant."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for arch, medians in results.items():
        sizes = sorted(medians)
        ax.plot([s * s for s in sizes], [medians[s] for s in sizes],
                marker='o', label=f'{args.backbone} {arch}')
    ax.set_xlabel('input pixels')
    ax.set_ylabel(f'eval latency, batch {args.batch} (ms)')
    ax.set_xscale('log')
    ax.set_yscale('log')
    ax.grid(True, which='both', alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)


def main():
    args = parse_args()
    tuned = False if args.no_malloc_tuning else tune_glibc_malloc()
    import mmvit.models as models
    backbone = getattr(models, args.backbone, None)
    if backbone is None:
        sys.exit(f'benchmark: unknown --backbone {args.backbone!r}; '
                 f'mmvit.models has {sorted(models.__all__)}')
    torch.set_num_threads(args.threads)
    sizes = sorted(args.sizes)
    header = ['variant', 'params (M)']
    if args.flops_size:
        header.append(f'GFLOPs @{args.flops_size}')
    header += [f'{s}x{s} ms (min-max)' for s in sizes]
    header.append(f'img/s @{sizes[0]}')
    if args.device.startswith('cuda'):
        header.append(f'peak MiB @{sizes[-1]}')
    if len(sizes) > 1:
        header.append(f't({sizes[-1]}^2)/t({sizes[-2]}^2)')
    rows, results = [], {}
    for arch in args.archs:
        model = backbone(arch=arch).to(args.device).eval()
        if args.deploy:
            from mmvit.deploy import switch_to_deploy
            switch_to_deploy(model)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        medians, cells = [], []
        measured, peaks = time_forwards(model, sizes, args)
        for size in sizes:
            times = [t * 1000 for t in measured[size]]
            medians.append(statistics.median(times))
            cells.append(f'{medians[-1]:.1f} ({min(times):.1f}-'
                         f'{max(times):.1f})')
        row = [arch, f'{params:.2f}']
        if args.flops_size:
            row.append(f'{count_flops(model, args.flops_size) / 1e9:.3f}')
        row += cells
        row.append(f'{1000 * args.batch / medians[0]:.1f}')
        if peaks:
            row.append(f'{peaks[sizes[-1]]:.0f}')
        if len(sizes) > 1:
            row.append(f'{medians[-1] / medians[-2]:.2f}')
        rows.append(row)
        results[arch] = dict(zip(sizes, medians))
        print(f'{args.backbone} {arch}: ' + ', '.join(
            f'{s}: {m:.1f} ms' for s, m in zip(sizes, medians)), flush=True)
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    table = '\n'.join(lines)
    note = (f'\n{args.backbone}{" deployed" if args.deploy else ""}, '
            f'eval forward, batch {args.batch}, '
            f'{args.device}, {args.threads} threads, median of '
            f'{args.repeat} after {args.warmup} warm-up, sizes '
            f'interleaved; glibc malloc {"tuned" if tuned else "default"}; '
            f'torch {torch.__version__}')
    print('\n' + table + note)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table + note + '\n')
    if args.plot:
        plot(results, args)


if __name__ == '__main__':
    main()
