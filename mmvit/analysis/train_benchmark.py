"""Time and peak memory of training steps (the library behind
``tools/analysis/train_benchmark.py``).

A step is forward, backward and an AdamW update of a backbone on random
images, the loss the mean square of every output map (its gradient reaches
every layer). Each *setting* builds the same model with the same weights
and runs it one way:

* ``eager``: the plain model;
* ``with_cp``: ``with_cp=True``, each block recomputed in the backward pass;
* ``channels_last``: the model and its input in channels-last memory;
* ``fused_adamw``: ``torch.optim.AdamW(fused=True)``, one kernel per update;
* ``compile``: ``torch.compile`` of the model (the step's first call
  compiles; warm-up runs absorb it).

The settings run interleaved within each repeat, so slow drifts of a shared
machine touch all alike. Peak memory is the CPU allocator's (the profiler's
memory events over one step, beyond what was live before it: activations,
gradients and temporaries; the weights and the optimizer state, created by
the warm-up steps, do not count) or CUDA's ``max_memory_allocated``.
"""
import copy
import time

import torch

from .benchmark import build_backbone, peak_memory_of, summarize

SETTINGS = ('eager', 'with_cp', 'channels_last', 'fused_adamw', 'compile')


class TrainStep:
    """One training step of ``model`` (forward, backward, optimizer) on a
    fixed input; ``__call__`` runs it."""

    def __init__(self, model, inputs, fused=False, lr=1e-4):
        self.model = model.train()
        self.inputs = inputs
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=lr,
                                           fused=fused or None)

    def __call__(self):
        outs = self.model(self.inputs)
        loss = sum(o.float().square().mean() for o in outs)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


def make_step(model, setting, size, batch, device):
    """The :class:`TrainStep` of ``setting`` for a copy of ``model``."""
    if setting not in SETTINGS:
        raise ValueError(f'unknown setting {setting!r}; allowed: '
                         f'{", ".join(SETTINGS)}')
    model = copy.deepcopy(model).to(device)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.rand(batch, 3, *size, generator=generator).to(device)
    if setting == 'with_cp':
        model.with_cp = True
        for stage in model.stages:
            stage.with_cp = True
    if setting == 'channels_last':
        model = model.to(memory_format=torch.channels_last)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    if setting == 'compile':
        model = torch.compile(model)
    return TrainStep(model, inputs, fused=setting == 'fused_adamw')


def measure_training(model, settings, size, batch=1, repeat=5, warmup=2,
                     device='cpu', memory=True):
    """{setting: dict(ms=(median, min, max), peak_bytes=int or None,
    loss=float)} of training steps of ``model`` at ``size`` (H, W).

    The first step's losses must agree across the settings (the same
    weights and input): a setting that computes something else raises.
    """
    device = torch.device(device)
    steps = {s: make_step(model, s, size, batch, device) for s in settings}
    losses = {s: float(step()) for s, step in steps.items()}
    reference = losses[settings[0]]
    for setting, loss in losses.items():
        if abs(loss - reference) > 1e-3 * max(abs(reference), 1e-6):
            raise RuntimeError(f'{setting}: first loss {loss:.6g} differs '
                               f'from {settings[0]}\'s {reference:.6g}')
    sync = (lambda: torch.cuda.synchronize(device)) if \
        device.type == 'cuda' else (lambda: None)
    times = {s: [] for s in settings}
    for i in range(warmup - 1 + repeat):
        for setting, step in steps.items():
            sync()
            start = time.perf_counter()
            step()
            sync()
            if i >= warmup - 1:
                times[setting].append(time.perf_counter() - start)
    results = {}
    for setting, step in steps.items():
        peak = peak_memory_of(step, device) if memory else None
        results[setting] = dict(ms=summarize(times[setting]),
                                peak_bytes=peak, loss=losses[setting])
    return results


def backbone_training(name, arch, settings, size, **kwargs):
    """:func:`measure_training` of ``mmvit.models.<name>(arch=arch)``."""
    return measure_training(build_backbone(name, arch), settings, size,
                            **kwargs)


def run(args):
    """Measure and print the table of ``tools/analysis/train_benchmark.py``
    (one row per variant and setting); returns the exit status."""
    from .benchmark import (check_device, format_mib, machine_description,
                            markdown_table, size_label, tune_glibc_malloc)
    device = check_device(args.device)
    tuned = device.type == 'cpu' and args.malloc_tuning and \
        tune_glibc_malloc()
    torch.set_num_threads(args.threads)
    header = ['variant', 'setting', f'step ms @{size_label(args.size)} '
              '(min-max)', 'speed-up', 'peak MiB', 'memory vs eager']
    rows = []
    for arch in args.archs:
        results = backbone_training(
            args.backbone, arch, args.settings, args.size, batch=args.batch,
            repeat=args.repeat, warmup=args.warmup, device=device,
            memory=not args.no_memory)
        base = results[args.settings[0]]
        for setting, result in results.items():
            median, low, high = result['ms']
            peak = result['peak_bytes']
            rows.append([
                arch, setting, f'{median:.1f} ({low:.1f}-{high:.1f})',
                f'{base["ms"][0] / median:.2f}',
                '-' if peak is None else format_mib(peak),
                '-' if peak is None or not base['peak_bytes'] else
                f'{peak / base["peak_bytes"]:.2f}'])
    table = markdown_table(header, rows)
    print(table)
    print(f'\n{args.backbone}, training step (forward, backward, AdamW) on '
          f'random {args.batch}x3x{args.size[0]}x{args.size[1]} images, '
          f'median of {args.repeat} after {args.warmup} warm-up steps, '
          f'settings interleaved; {machine_description(device, args.threads)}'
          f'; glibc malloc {"tuned" if tuned else "default"}. Speed-up and '
          f'memory relative to {args.settings[0]}.')
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table + '\n')
    return 0
