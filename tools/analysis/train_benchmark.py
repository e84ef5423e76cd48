#!/usr/bin/env python
"""Time and peak memory of training steps of a backbone or a model.

Each step runs under each setting, interleaved:

    # activation checkpointing at the detection size
    python tools/analysis/train_benchmark.py --backbone CASViT --archs s \\
        --size 800x1333 --batch 2 --settings eager with_cp
    # the classifier's step: channels-last, fused AdamW, torch.compile
    python tools/analysis/train_benchmark.py --backbone EfficientViT \\
        --archs m4 --size 224 --batch 16 \\
        --settings eager channels_last fused_adamw compile
    # a config's whole train step, eager and as compile=True makes it
    python tools/analysis/train_benchmark.py \\
        --config configs/cas_vit/retinanet_cas_vit_xs.py --size 800x1344 --batch 2

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

A whole model's step (:func:`config_training`, ``--config``) is instead the
config's ``model.train_step`` with its own optimizer on a synthetic batch
(:func:`synthetic_batch`), eager or compiled (:data:`CONFIG_SETTINGS`).

The settings run interleaved within each repeat, so slow drifts of a shared
machine touch all alike. Peak memory is the CPU allocator's (the profiler's
memory events over one step, beyond what was live before it: activations,
gradients and temporaries; the weights and the optimizer state, created by
the warm-up steps, do not count) or CUDA's ``max_memory_allocated``.
"""
import argparse
import copy
import os.path as osp
import sys
import time

sys.path[:0] = [osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
                osp.dirname(osp.abspath(__file__))]  # mmvit; benchmark

import torch  # noqa: E402
from mmvit.utils.benchmark import (build_backbone,  # noqa: E402
                                   peak_memory_of, size_arg, summarize)


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
        if amp and inputs.device.type == 'cpu':
            # as tools/train.py --amp trains on the CPU
            from mmvit.engine.optim_wrapper import \
                keep_strided_depthwise_float32
            keep_strided_depthwise_float32(model)
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


#: the settings a whole model's train step (``--config``) can run under
CONFIG_SETTINGS = ('eager', 'compile')


class ModelTrainStep:
    """``model.train_step(data, optim_wrapper)`` of an OpenMMLab model on a
    fixed batch: what a runner's training loop calls for one iteration
    (data preprocessing, forward, losses, backward, the optimizer's
    update). With ``compiled``, the step is
    ``torch.compile(model.train_step, dynamic=False)``, as ``compile=True``
    in a config makes it (``tools/train.py``).
    ``__call__`` returns the total loss."""

    def __init__(self, model, data, optim_wrapper, compiled=False):
        self.model = model.train()
        self.data = data
        self.optim_wrapper = optim_wrapper
        self.step = torch.compile(model.train_step, dynamic=False) \
            if compiled else model.train_step

    def __call__(self):
        return self.step(self.data, self.optim_wrapper)['loss'].detach()


def synthetic_batch(scope, size, batch, num_classes, with_masks=False):
    """A fixed batch for ``train_step`` of a model of library ``scope``:
    ``batch`` random uint8 images of ``size`` (H, W) and, per image,
    ground truth of ``num_classes`` classes: three boxes (with masks for
    ``with_masks``) for mmdet, a random label map for mmseg, a label for
    mmpretrain; shapes as the image's (scale factor 1)."""
    generator = torch.Generator().manual_seed(0)
    height, width = size
    inputs = [torch.randint(0, 256, (3, height, width), generator=generator,
                            dtype=torch.uint8) for _ in range(batch)]
    meta = dict(img_shape=size, ori_shape=size, pad_shape=size,
                batch_input_shape=size, scale_factor=(1., 1.))
    samples = []
    for _ in range(batch):
        if scope == 'mmdet':
            from mmdet.structures import DetDataSample
            from mmdet.structures.mask import BitmapMasks
            from mmengine.structures import InstanceData
            corners = torch.rand(3, 2, 2, generator=generator) * \
                torch.tensor([width, height])
            boxes = torch.cat([corners.amin(1), corners.amax(1) + 16], 1)
            boxes = boxes.minimum(torch.tensor([width, height] * 2) - 1)
            truth = InstanceData(bboxes=boxes, labels=torch.randint(
                num_classes, (3, ), generator=generator))
            if with_masks:
                masks = torch.zeros(3, height, width, dtype=torch.uint8)
                for mask, (x1, y1, x2, y2) in zip(masks, boxes.long()):
                    mask[y1:y2, x1:x2] = 1
                truth.masks = BitmapMasks(masks.numpy(), height, width)
            samples.append(DetDataSample(metainfo=meta, gt_instances=truth))
        elif scope == 'mmseg':
            from mmengine.structures import PixelData
            from mmseg.structures import SegDataSample
            labels = torch.randint(num_classes, (1, height, width),
                                   generator=generator)
            samples.append(SegDataSample(metainfo=meta,
                                         gt_sem_seg=PixelData(data=labels)))
        else:
            from mmpretrain.structures import DataSample
            samples.append(DataSample(metainfo=meta).set_gt_label(
                int(torch.randint(num_classes, (1, ), generator=generator))))
    return dict(inputs=inputs, data_samples=samples)


def config_training(path, settings, size, batch=2, repeat=5, warmup=2,
                    memory=True):
    """:func:`measure_steps` of the train step of config ``path``'s model
    (:class:`ModelTrainStep`; weights from the config's init, the
    backbone's random where it names a checkpoint, seeded, the same in
    every setting) on :func:`synthetic_batch`, under each of ``settings``
    (:data:`CONFIG_SETTINGS`), keyed by setting. Each setting has its own
    copy of the model and its own optimizer from the config's
    ``optim_wrapper``. On the CPU."""
    from types import SimpleNamespace

    from mmengine.optim import build_optim_wrapper

    from mmvit.engine import PlainParamGroupsHook
    from mmvit.utils.config import build_model, load_config
    unknown = sorted(set(settings) - set(CONFIG_SETTINGS))
    if unknown:
        raise ValueError(f'a config\'s train step runs under '
                         f'{", ".join(CONFIG_SETTINGS)}, not '
                         f'{", ".join(unknown)}')
    cfg = load_config(path)
    if cfg.get('data_preprocessor'):  # as mmengine's Runner builds it
        cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    backbone = cfg.model.get('backbone') or {}
    init_cfg = backbone.get('init_cfg')
    if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
        backbone.init_cfg = None  # no checkpoint needed for timing
    torch.manual_seed(0)
    model = build_model(cfg)
    model.init_weights()  # the heads' own init (e.g. focal-loss priors)
    scope = cfg.get('default_scope', 'mmdet')
    heads = [cfg.model.get(key) or {} for key in
             ('bbox_head', 'roi_head', 'decode_head', 'head')]
    head = next(h for h in heads + [{}] if h)
    num_classes = head.get('num_classes') or \
        (head.get('bbox_head') or {}).get('num_classes') or 2
    data = synthetic_batch(scope, size, batch, num_classes, with_masks=bool(
        (cfg.model.get('roi_head') or {}).get('mask_head')))
    steps = {}
    for setting in settings:
        copy_ = copy.deepcopy(model)
        wrapper = build_optim_wrapper(copy_, cfg.optim_wrapper)
        # plain parameter groups, as compile=True makes them
        PlainParamGroupsHook().before_train(
            SimpleNamespace(optim_wrapper=wrapper))
        steps[setting] = ModelTrainStep(copy_, data, wrapper,
                                        compiled=setting == 'compile')
    return measure_steps(steps, repeat, warmup, 'cpu', memory)


def run(args):
    """Measure and print the table of ``tools/analysis/train_benchmark.py``
    (one row per variant and setting); returns the exit status."""
    from mmvit.utils.benchmark import (check_device, format_mib, machine_description,
                            markdown_table, size_label)
    from benchmark import tune_glibc_malloc  # tools/analysis
    device = check_device(args.device)
    tuned = device.type == 'cpu' and args.malloc_tuning and \
        tune_glibc_malloc()
    torch.set_num_threads(args.threads)
    header = ['variant', 'setting', f'step ms @{size_label(args.size)} '
              '(min-max)', 'speed-up', 'peak MiB', 'memory vs eager']
    rows = []
    config = getattr(args, 'config', None)
    for arch in args.archs or [None]:
        if config:
            results = config_training(
                config, args.settings, args.size, batch=args.batch,
                repeat=args.repeat, warmup=args.warmup,
                memory=not args.no_memory)
            arch = osp.splitext(osp.basename(config))[0]
        else:
            results = backbone_training(
                args.backbone, arch, args.settings, args.size,
                batch=args.batch, repeat=args.repeat, warmup=args.warmup,
                device=device, memory=not args.no_memory)
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
    what = f'{config}, train_step (data preprocessing, losses, ' \
        'backward, the config\'s optimizer) on a synthetic batch of' \
        if config else \
        f'{args.backbone}, training step (forward, backward, AdamW) on random'
    print(f'\n{what} {args.batch}x3x{args.size[0]}x{args.size[1]} images, '
          f'median of {args.repeat} after {args.warmup} warm-up steps, '
          f'settings interleaved; {machine_description(device, args.threads)}'
          f'; glibc malloc {"tuned" if tuned else "default"}. Speed-up and '
          f'memory relative to {args.settings[0]}.')
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table + '\n')
    return 0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--backbone',
                        help='a registered mmvit backbone, e.g. CASViT')
    parser.add_argument('--archs', nargs='+')
    parser.add_argument('--config',
                        help='instead of a backbone: the whole model of a '
                        'config, its train step on a synthetic batch '
                        f'(settings {" and ".join(CONFIG_SETTINGS)})')
    parser.add_argument('--size', type=size_arg, default=(224, 224),
                        help='input HEIGHTxWIDTH (or one side)')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--settings', nargs='+', type=setting_arg,
                        help='default: eager with_cp (eager compile with '
                        '--config); '
                        f'each one of {", ".join(SETTINGS)} or several '
                        'joined by "+" (e.g. channels_last+fused_adamw); '
                        'the first is the reference of the ratios')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2,
                        help='steps before timing (>= 1; compile needs 2)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--no-memory', action='store_true',
                        help='skip the peak-memory measurement')
    parser.add_argument('--malloc-tuning', action='store_true',
                        help='keep freed CPU memory in glibc (see '
                        'tools/analysis/benchmark.py: tune_glibc_malloc)')
    parser.add_argument('--out', help='also write the table to this file')
    args = parser.parse_args(argv)
    if args.batch < 1 or args.repeat < 1 or args.warmup < 1:
        parser.error('--batch, --repeat and --warmup must be >= 1')
    if (args.config is None) == (args.backbone is None) or \
            (args.backbone is not None) != (args.archs is not None):
        parser.error('give --backbone with --archs, or --config')
    if args.settings is None:
        args.settings = list(CONFIG_SETTINGS) if args.config else \
            ['eager', 'with_cp']
    if args.config and not set(args.settings) <= set(CONFIG_SETTINGS):
        parser.error(f'--config runs the settings '
                     f'{", ".join(CONFIG_SETTINGS)}; got '
                     f'{" ".join(args.settings)}')
    if args.config and args.device != 'cpu':
        parser.error('--config measures on the CPU only')
    if len(set(args.settings)) != len(args.settings):
        parser.error('--settings lists a setting twice')
    return args


def main(argv=None):
    return run(parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
