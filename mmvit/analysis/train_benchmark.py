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
* ``compile``: ``torch.compile(model, dynamic=False)`` (the step's first
  call compiles; warm-up runs absorb it);
* ``amp``: forward and loss under ``torch.autocast`` in bfloat16 (mixed
  precision; the weights, gradients and optimizer stay float32);
* several of them joined by ``+``, e.g. ``channels_last+fused_adamw``.

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

SETTINGS = ('eager', 'with_cp', 'channels_last', 'fused_adamw', 'compile',
            'amp')


def mean_square_loss(outputs):
    """The mean square of every output map, summed (its gradient reaches
    every layer of a backbone)."""
    return sum(o.float().square().mean() for o in outputs)


class TrainStep:
    """One training step of ``model`` (forward, ``loss_fn`` of the outputs,
    backward, AdamW) on a fixed input; ``__call__`` runs it and returns the
    loss."""

    def __init__(self, model, inputs, fused=False, lr=1e-4,
                 loss_fn=mean_square_loss, amp=False):
        self.model = model.train()
        self.inputs = inputs
        self.loss_fn = loss_fn
        self.amp = amp
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=lr,
                                           fused=fused or None)

    def __call__(self):
        with torch.autocast(self.inputs.device.type, dtype=torch.bfloat16,
                            enabled=self.amp):
            loss = self.loss_fn(self.model(self.inputs))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


def parse_setting(setting):
    """The parts of a setting, e.g. ``'channels_last+fused_adamw'`` ->
    ``{'channels_last', 'fused_adamw'}`` (each one of :data:`SETTINGS`)."""
    parts = set(setting.split('+'))
    unknown = sorted(parts - set(SETTINGS))
    if unknown:
        raise ValueError(f'unknown setting {"+".join(unknown)!r} in '
                         f'{setting!r}; allowed: {", ".join(SETTINGS)}, '
                         f'joined by "+"')
    return parts


def setting_arg(text):
    """An argparse ``type``: ``text`` if :func:`parse_setting` accepts it."""
    import argparse
    try:
        parse_setting(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def make_step(model, setting, size, batch, device, loss_fn=mean_square_loss):
    """The :class:`TrainStep` of ``setting`` (one of :data:`SETTINGS` or
    several joined by ``+``) for a copy of ``model``."""
    parts = parse_setting(setting)
    model = copy.deepcopy(model).to(device)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.rand(batch, 3, *size, generator=generator).to(device)
    if 'with_cp' in parts:
        for module in model.modules():
            if hasattr(module, 'with_cp'):
                module.with_cp = True
    if 'channels_last' in parts:
        model = model.to(memory_format=torch.channels_last)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    if 'compile' in parts:
        # the step's one input shape; and no shapes made dynamic because
        # another model compiled before it shares its classifier's code
        model = torch.compile(model, dynamic=False)
    return TrainStep(model, inputs, fused='fused_adamw' in parts,
                     loss_fn=loss_fn, amp='amp' in parts)


def measure_steps(steps, repeat=5, warmup=2, device='cpu', memory=True,
                  rtol=1e-3, unchecked=()):
    """{name: dict(ms=(median, min, max), peak_bytes=int or None,
    loss=float)} of the training steps ``steps`` ({name: callable returning
    the loss}), run interleaved.

    The first step's losses must agree (the same function of the same
    weights and input), except those of the steps named in ``unchecked``:
    a step that computes something else raises.
    """
    device = torch.device(device)
    losses = {name: float(step()) for name, step in steps.items()}
    first = next(iter(losses))
    reference = losses[first]
    for name, loss in losses.items():
        if name not in unchecked and \
                abs(loss - reference) > rtol * max(abs(reference), 1e-6):
            raise RuntimeError(f'{name}: first loss {loss:.6g} differs '
                               f'from {first}\'s {reference:.6g}')
    sync = (lambda: torch.cuda.synchronize(device)) if \
        device.type == 'cuda' else (lambda: None)
    times = {name: [] for name in steps}
    for i in range(warmup - 1 + repeat):
        for name, step in steps.items():
            sync()
            start = time.perf_counter()
            step()
            sync()
            if i >= warmup - 1:
                times[name].append(time.perf_counter() - start)
    results = {}
    for name, step in steps.items():
        peak = peak_memory_of(step, device) if memory else None
        results[name] = dict(ms=summarize(times[name]), peak_bytes=peak,
                             loss=losses[name])
    return results


def measure_training(model, settings, size, batch=1, repeat=5, warmup=2,
                     device='cpu', memory=True):
    """:func:`measure_steps` of ``model`` at ``size`` (H, W) under each of
    ``settings``, keyed by setting."""
    device = torch.device(device)
    steps = {s: make_step(model, s, size, batch, device) for s in settings}
    return measure_steps(steps, repeat, warmup, device, memory)


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
