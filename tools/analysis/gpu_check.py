#!/usr/bin/env python
"""Check a CUDA machine: mmcv's CUDA ops, an AMP training step of every
family, the GPU-only paths (CMT's fused attention, deployed models) against
the CPU, and AMP throughput at batch 256 and 2048.

    python tools/analysis/gpu_check.py            # exit status 0: all passed

Without mmcv's CUDA ops the first check fails and prints the build command
(library: mmvit.analysis.gpu_check).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--batches', type=int, nargs='+',
                        default=[256, 2048])
    args = parser.parse_args(argv)
    from mmvit.analysis.gpu_check import run_checks
    return run_checks(args.device, args.size, tuple(args.batches))


if __name__ == '__main__':
    sys.exit(main())
