#!/usr/bin/env python
"""Check a CUDA machine: mmcv's CUDA ops, an AMP training step of every
family, the GPU-only paths (CMT's fused attention, deployed models) against
the CPU, and AMP throughput at batch 256 and 2048.

    python tools/analysis/gpu_check.py            # exit status 0: all passed

Without mmcv's CUDA ops the first check fails and prints the build command
(its checks: the functions below).
"""
import argparse
import copy
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

import torch
from mmvit.families import families  # noqa: E402
from mmvit.registry import MODELS  # noqa: E402


#: how to build mmcv 2.1.0 with its CUDA ops (minutes to an hour)
MMCV_CUDA_BUILD = ('FORCE_CUDA=1 MAX_JOBS=8 python -m pip wheel '
                   '--no-build-isolation --no-deps mmcv==2.1.0 -w wheels/ && '
                   'pip install --force-reinstall --no-deps wheels/mmcv-*.whl')


def _backbone(family, arch=None, **kwargs):
    info = families()[family]
    torch.manual_seed(0)
    return MODELS.build(dict(type=f'mmvit.{info.backbone}',
                             arch=arch or info.smallest, **kwargs))


def check_mmcv_ops(device):
    """mmcv's NMS and RoIAlign run on the GPU and agree with the CPU."""
    from mmcv.ops import RoIAlign, nms
    generator = torch.Generator().manual_seed(0)
    xy = torch.rand(200, 2, generator=generator) * 100
    boxes = torch.cat([xy, xy + 5 + torch.rand(200, 2,
                                               generator=generator) * 30], 1)
    scores = torch.rand(200, generator=generator)
    try:
        _, keep_gpu = nms(boxes.to(device), scores.to(device), 0.5)
    except (RuntimeError, NotImplementedError) as error:
        return dict(ok=False, error=f'{error}'.splitlines()[0],
                    fix=MMCV_CUDA_BUILD)
    _, keep_cpu = nms(boxes, scores, 0.5)
    feats = torch.rand(2, 8, 32, 32, generator=generator)
    rois = torch.tensor([[0, 2., 3., 20., 25.], [1, 0., 0., 31., 15.]])
    align = RoIAlign((7, 7), 0.5, 0, aligned=True)
    pooled_cpu = align(feats, rois)
    pooled_gpu = align(feats.to(device), rois.to(device)).cpu()
    diff = float((pooled_cpu - pooled_gpu).abs().max())
    same = torch.equal(keep_cpu, keep_gpu.cpu())
    return dict(ok=same and diff < 1e-4, nms_equal=same,
                roi_align_max_diff=diff)


def check_amp_training(device, size=224, batch=8):
    """One AMP (float16 autocast, gradient scaler) training step of every
    family's smallest variant: finite loss and gradients."""
    results = {}
    for family in families():
        model = _backbone(family).to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        scaler = torch.amp.GradScaler('cuda')
        x = torch.rand(batch, 3, size, size, device=device)
        with torch.autocast('cuda', dtype=torch.float16):
            loss = sum(o.float().square().mean() for o in model(x))
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        finite = bool(torch.isfinite(loss)) and all(
            torch.isfinite(p.grad).all() for p in model.parameters()
            if p.grad is not None)
        results[family] = dict(loss=float(loss), finite=finite)
    return dict(ok=all(r['finite'] for r in results.values()), **results)


def check_gpu_paths(device, size=224):
    """The paths taken only off the CPU against the CPU's results (float32,
    eval): CMT's fused attention (``scaled_dot_product_attention``) and
    every family's deployed model."""
    results = {}
    x = torch.rand(2, 3, size, size, generator=torch.Generator()
                   .manual_seed(0))
    for family in families():
        from mmvit.deploy import switch_to_deploy
        model = _backbone(family).eval()
        deployed = switch_to_deploy(copy.deepcopy(model))
        with torch.no_grad():
            expected = model(x)
            got = [model.to(device)(x.to(device)),
                   deployed.to(device)(x.to(device))]
        worst = max(float((a - b.cpu()).abs().max() / a.abs().max())
                    for outs in got for a, b in zip(expected, outs))
        results[family] = dict(relative_diff=worst)
    return dict(ok=all(r['relative_diff'] < 1e-3 for r in results.values()),
                **results)


def throughput(device, batches=(256, 2048), size=224, repeat=5):
    """Images per second of every family's default variant, AMP eval
    forward, at each batch size (``out of memory`` where it does not
    fit)."""
    results = {}
    for family in families():
        model = _backbone(family, arch=None).to(device).eval()
        row = {}
        for batch in batches:
            try:
                x = torch.rand(batch, 3, size, size, device=device)
                with torch.no_grad(), torch.autocast(
                        'cuda', dtype=torch.float16):
                    model(x)
                    torch.cuda.synchronize(device)
                    start = time.perf_counter()
                    for _ in range(repeat):
                        model(x)
                    torch.cuda.synchronize(device)
                row[batch] = round(batch * repeat /
                                   (time.perf_counter() - start), 1)
            except torch.cuda.OutOfMemoryError:
                row[batch] = 'out of memory'
            finally:
                torch.cuda.empty_cache()
        results[family] = row
    return dict(ok=True, images_per_second=results)


def run_checks(device='cuda', size=224, batches=(256, 2048)):
    """Run every check, print one line each; the exit status (0 when all
    passed)."""
    if not torch.cuda.is_available():
        print('gpu_check: CUDA is not available on this machine; run it '
              'where torch.cuda.is_available() holds')
        return 2
    device = torch.device(device)
    print(f'gpu_check on {torch.cuda.get_device_name(device)}, torch '
          f'{torch.__version__} (CUDA {torch.version.cuda})')
    checks = [('mmcv CUDA ops', lambda: check_mmcv_ops(device)),
              ('AMP training step', lambda: check_amp_training(device,
                                                               size)),
              ('GPU paths vs CPU', lambda: check_gpu_paths(device, size)),
              ('AMP throughput', lambda: throughput(device, batches, size))]
    failed = 0
    for name, check in checks:
        try:
            result = check()
        except Exception as error:  # report and go on with the next check
            result = dict(ok=False, error=f'{type(error).__name__}: '
                          f'{error}'.splitlines()[0])
        ok = result.pop('ok')
        failed += not ok
        print(f'{name}: {"OK" if ok else "FAILED"} {result}', flush=True)
    return 1 if failed else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--batches', type=int, nargs='+',
                        default=[256, 2048])
    args = parser.parse_args(argv)
    return run_checks(args.device, args.size, tuple(args.batches))


if __name__ == '__main__':
    sys.exit(main())
