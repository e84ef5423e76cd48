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
import copy
import glob
import importlib
import os.path as osp
import sys
import types

sys.path[:0] = [osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
                osp.dirname(osp.abspath(__file__))]  # mmvit; train_benchmark

import torch  # noqa: E402
from mmvit.utils.benchmark import relative_difference  # noqa: E402
from train_benchmark import setting_arg  # noqa: E402


# family -> how to find and build the official classifier
OFFICIAL = {
    'cas_vit': dict(
        repo='https://github.com/Tianfang-Zhang/CAS-ViT',
        file='classification/model/rcvit.py',
        archs=('xs', 's', 'm', 't')),
    'cmt': dict(
        repo='https://github.com/huawei-noah/Efficient-AI-Backbones',
        file='cmt_pytorch/cmt.py',
        archs=('ti', 'xs', 's', 'b')),
    'efficientvit': dict(
        repo='https://github.com/microsoft/Cream',
        file='EfficientViT/classification/model/build.py',
        archs=('m0', 'm1', 'm2', 'm3', 'm4', 'm5')),
}
#: the largest relative difference of mmvit's logits (eval and deployed)
#: from the official ones that the benchmark accepts
RTOL = 1e-4


def classification_size(family, arch):
    """The ImageNet resolution of the variant: CMT's variants train at
    their own (``train_size`` of its arch table), the others at 224."""
    if family == 'cmt':
        from mmvit.models.backbones.cmt import CMT
        return CMT.arch_settings[arch]['train_size']
    return 224


def find_official(root, family):
    """The path of ``family``'s official model file under ``root`` (the
    repository itself or a folder holding its clone)."""
    if family not in OFFICIAL:
        raise ValueError(f'peer_benchmark: no official code for {family!r}; '
                         f'allowed: {", ".join(OFFICIAL)}')
    rel = OFFICIAL[family]['file']
    found = sorted(glob.glob(osp.join(root, rel)) +
                   glob.glob(osp.join(root, '*', rel)))
    if not found:
        raise FileNotFoundError(
            f'peer_benchmark: no {rel} under --official-root {root} (nor '
            f'one folder down); clone {OFFICIAL[family]["repo"]} there')
    return found[0]


def import_official(root, family):
    """The official model module of ``family``, imported from its file as
    the package ``mmvit_official_<family>`` (the EfficientViT builder
    imports its model module relatively)."""
    path = find_official(root, family)
    package = f'mmvit_official_{family}'
    name = f'{package}.{osp.splitext(osp.basename(path))[0]}'
    if name in sys.modules:
        return sys.modules[name]
    module = types.ModuleType(package)
    module.__path__ = [osp.dirname(path)]
    sys.modules[package] = module
    try:
        return importlib.import_module(name)
    except ImportError as error:
        del sys.modules[package]
        raise ImportError(f'peer_benchmark: importing {path} failed: '
                          f'{error}') from error


def build_official(module, family, arch, size):
    """The official classifier of ``family``/``arch`` for ``size`` x
    ``size`` inputs, in train mode (seeded: reproducible weights)."""
    torch.manual_seed(0)
    if family == 'cas_vit':
        return getattr(module, f'rcvit_{arch}')(num_classes=1000)
    if family == 'cmt':
        return getattr(module, f'cmt_{arch}')(img_size=size)
    cfg = getattr(module, f'EfficientViT_{arch}')
    return getattr(module, f'EfficientViT_{arch.upper()}')(
        model_cfg=dict(cfg, img_size=size))


def official_fused(module, family, model):
    """The official code's own inference form of ``model`` (a copy), or
    None where it has none (EfficientViT's ``replace_batchnorm``)."""
    if family != 'efficientvit':
        return None
    fused = copy.deepcopy(model).eval()
    module.replace_batchnorm(fused)
    return fused


def build_timm(family, arch):
    """timm's model of the variant, or None where timm has none."""
    if family != 'efficientvit':
        return None
    import timm
    torch.manual_seed(0)
    return timm.create_model(f'efficientvit_{arch}', pretrained=False)


def build_mmvit(family, arch, official_state, cfg_options=None):
    """mmvit's classifier (``configs/imagenet_{family}_{arch}.py``, built
    through mmpretrain) holding ``official_state`` converted, as a module
    of images -> logits."""
    from mmvit.converters.classifier import convert_classifier
    from mmvit.utils.config import config_path
    from mmvit.utils.benchmark import build_config_model
    model = build_config_model(config_path(f'imagenet_{family}_{arch}.py'),
                               cfg_options)
    state, _, _ = convert_classifier(family, official_state, arch,
                                     f'the official {family} {arch}')
    model.model.load_state_dict(state, strict=True)
    return model


def official_pair(module, family, arch, size):
    """``(reference, official)``: the official classifier at the
    classification resolution and the one for ``size`` x ``size`` inputs
    (the same model at that resolution; otherwise built for ``size`` and
    given the reference's tensors whose shapes fit)."""
    train_size = classification_size(family, arch)
    reference = build_official(module, family, arch, train_size)
    if size == train_size:
        return reference, reference
    official = build_official(module, family, arch, size)
    load_matching(official, reference.state_dict())
    return reference, official


def load_matching(model, state):
    """Copy the tensors of ``state`` whose names and shapes ``model`` has
    (the others keep their values); returns the names copied."""
    own = model.state_dict()
    fit = {k: v for k, v in state.items()
           if k in own and own[k].shape == v.shape}
    model.load_state_dict(fit, strict=False)
    return set(fit)


def inference_models(root, family, arch, size, folder, threads,
                     compile_official=False):
    """{name: eval module} of the peers and mmvit at ``size``, the
    onnxruntime sessions with ``threads`` threads (graphs written to
    ``folder``), and at the classification resolution the relative
    differences of mmvit's logits (eval, deployed, onnxruntime) and the
    official fused model's from the official ones; RuntimeError where
    mmvit's exceed :data:`RTOL`.

    Peers: the official model, its fused form (EfficientViT), timm's
    model, the official model under ``torch.compile`` (with
    ``compile_official``) and the official (fused) model exported to ONNX
    for this size and run by onnxruntime. mmvit: eval, deployed, and its
    CPU route, the deployed model exported to ONNX and run by onnxruntime:
    for this size, as the official model, and with dynamic sizes (the
    export of detectors and segmentors)."""
    from mmvit.deploy import switch_to_deploy
    from mmvit.export.onnx import onnx_runtime_module
    module = import_official(root, family)
    reference, official = official_pair(module, family, arch, size)
    reference.eval()
    official.eval()
    models = {'official': official}
    fused = official_fused(module, family, official)
    if fused is not None:
        models['official fused'] = fused
    timm_model = build_timm(family, arch)
    if timm_model is not None:
        models['timm'] = timm_model.eval()
    best_official = official if fused is None else fused
    if compile_official:
        models['official compiled'] = torch.compile(
            copy.deepcopy(best_official), dynamic=False)
    example = torch.rand(1, 3, size, size)
    models['official onnxruntime'] = onnx_runtime_module(
        copy.deepcopy(best_official), osp.join(folder, 'official.onnx'),
        example, threads, dynamic=False)
    ours = build_mmvit(family, arch, reference.state_dict()).eval()
    models['mmvit'] = ours
    models['mmvit deployed'] = switch_to_deploy(copy.deepcopy(ours))
    models['mmvit onnxruntime'] = onnx_runtime_module(
        models['mmvit deployed'], osp.join(folder, 'mmvit.onnx'), example,
        threads, dynamic=False)
    models['mmvit onnxruntime dynamic'] = onnx_runtime_module(
        models['mmvit deployed'], osp.join(folder, 'mmvit_dynamic.onnx'),
        example, threads)
    checks = {}
    if official is reference:
        x = torch.rand(1, 3, size, size,
                       generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            ref = mean_logits(reference(x))
            for name in MMVIT:
                checks[name] = relative_difference(ref, models[name](x))
            if fused is not None:
                checks['official fused'] = relative_difference(ref, fused(x))
    for name in MMVIT:
        if checks.get(name, 0.) > RTOL:
            raise RuntimeError(f'{family} {arch}: {name} logits differ from '
                               f'the official ones by {checks[name]:.2e} '
                               f'relative (more than {RTOL})')
    return models, checks


def mean_logits(outputs):
    """Logits of a classifier's training output: a tensor, or the mean of a
    tuple of them (CAS-ViT's official classifier returns its two heads')."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    return sum(outputs) / len(outputs)


def without_dropout(model):
    """``model`` with every dropout's probability set to 0 (the official
    CMT-B fixes its classifier's at 0.3)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.
    return model


def training_steps(root, family, arch, size, batch, settings,
                   device='cpu'):
    """{name: TrainStep} of the official classifier (eager) and mmvit's
    under each of ``settings`` (see :mod:`.train_benchmark`; with an
    ``amp`` setting also the official one under ``amp``), on the same
    random ``batch`` x 3 x ``size`` x ``size`` images and labels, with
    drop path and dropout off on both sides (steps without randomness, so
    that their first losses can be compared), and the names whose losses
    are not comparable (CMT's official model at a size other than its
    classification size has position-bias tables of its own)."""
    import torch.nn.functional as F

    from train_benchmark import make_step, parse_setting
    module = import_official(root, family)
    reference, official = official_pair(module, family, arch, size)
    without_dropout(reference)
    without_dropout(official)
    # CMT's official model for another size has position-bias tables of its
    # own, so its loss is not mmvit's
    unchecked = ('official', ) if family == 'cmt' and \
        official is not reference else ()
    ours = build_mmvit(family, arch, reference.state_dict(), {
        'model.backbone.drop_path_rate': 0.,
        'model.head.dropout': 0.})
    labels = torch.arange(batch, device=device) % 1000

    def loss_fn(outputs):
        return F.cross_entropy(mean_logits(outputs), labels)

    square = (size, size)
    steps = {f'mmvit {s}': make_step(ours, s, square, batch, device,
                                     loss_fn)
             for s in settings}
    steps['official'] = make_step(official, 'eager', square, batch, device,
                                  loss_fn)
    if any('amp' in parse_setting(s) for s in settings):
        # mixed precision is a setting of the official training code too
        steps['official amp'] = make_step(official, 'amp', square, batch,
                                          device, loss_fn)
        unchecked += ('official amp', ) if 'official' in unchecked else ()
    return steps, unchecked


#: the peers a user would run instead of mmvit (``best peer`` is the
#: fastest of them)
PEERS = ('official', 'official fused', 'timm', 'official compiled',
         'official onnxruntime')
#: mmvit's forms in the inference table; the last two are its CPU route
MMVIT = ('mmvit', 'mmvit deployed', 'mmvit onnxruntime',
         'mmvit onnxruntime dynamic')


def _variants(args):
    """(family, arch) pairs of ``--families`` and ``--archs``; an arch
    written ``family:arch`` is of that family only."""
    wanted = [a.split(':', 1) if ':' in a else (None, a)
              for a in args.archs or ()]
    for owner, arch in wanted:
        if owner is not None and owner not in args.families:
            raise SystemExit(f'peer_benchmark: --archs {owner}:{arch} names '
                             f'a family not in --families '
                             f'{" ".join(args.families)}')
    for family in args.families:
        known = OFFICIAL[family]['archs']
        archs = [a for owner, a in wanted if owner in (None, family)] \
            if wanted else known
        for arch in archs:
            if arch not in known:
                raise SystemExit(
                    f'peer_benchmark: {family} has no variant {arch!r}; '
                    f'allowed: {", ".join(known)}')
            yield family, arch


def _sizes(args, family, arch):
    cls = classification_size(family, arch)
    return list(dict.fromkeys(cls if s == 0 else s for s in args.sizes))


def inference_row(family, arch, size, threads, ms, checks):
    """A row of the inference table from the medians ``ms`` ({name:
    milliseconds}) of one variant, size and thread count."""
    best = min(ms[p] for p in PEERS if p in ms)
    route = ms['mmvit onnxruntime']
    dynamic = ms['mmvit onnxruntime dynamic']
    diff = ('-' if not checks else
            ', '.join(f'{checks[name]:.1e}' for name in MMVIT))
    return ([f'{family} {arch}', size, threads] +
            [f'{ms[p]:.1f}' if p in ms else '-' for p in PEERS] +
            [f'{ms[name]:.1f}' for name in MMVIT] +
            [f'{ms["official onnxruntime"] / route:.2f}',
             f'{best / route:.2f}',
             f'{ms["official onnxruntime"] / dynamic:.2f}',
             f'{ms["official"] / ms["mmvit"]:.2f}', diff])


def run_inference(args):
    """Rows of the inference table: per variant, size and thread count,
    each peer's and mmvit's eval milliseconds (median), interleaved in one
    process, and the ratios."""
    import tempfile

    from mmvit.utils.benchmark import Options, measure
    opts = Options('cpu', batch=1, repeat=args.repeat, warmup=args.warmup,
                   memory=False)
    header = (['variant', 'size', 'threads'] + [f'{p} ms' for p in PEERS] +
              [f'{m} ms' for m in MMVIT] +
              ['official onnxruntime / mmvit onnxruntime',
               'best peer / mmvit onnxruntime',
               'official onnxruntime / mmvit onnxruntime dynamic',
               'official / mmvit',
               'max rel. diff (eval, deployed, onnxruntime, dynamic)'])
    rows = []
    for family, arch in _variants(args):
        for size in _sizes(args, family, arch):
            for threads in args.threads:
                torch.set_num_threads(threads)
                with tempfile.TemporaryDirectory() as folder:
                    models, checks = inference_models(
                        args.official_root, family, arch, size, folder,
                        threads, args.compile)
                    square = (size, size)
                    result = measure(models, [square], opts)
                ms = {name: r['ms'][square][0]
                      for name, r in result.items()}
                rows.append(inference_row(family, arch, size, threads, ms,
                                          checks))
                print(' | '.join(str(c) for c in rows[-1]), flush=True)
    return header, rows


def run_training(args):
    """Rows of the training table: per variant and size, the official
    classifier's training step and mmvit's under each setting, interleaved,
    with peak memory and the ratios to the official step."""
    from mmvit.utils.benchmark import format_mib
    from train_benchmark import measure_steps
    header = ['variant', 'size', 'batch', 'step', 'ms (min-max)',
              'official / this', 'peak MiB', 'memory / official']
    rows = []
    for family, arch in _variants(args):
        for size in _sizes(args, family, arch):
            steps, unchecked = training_steps(
                args.official_root, family, arch, size, args.batch,
                args.settings)
            results = measure_steps(steps, args.repeat, args.warmup,
                                    memory=not args.no_memory,
                                    unchecked=unchecked)
            base = results['official']
            for name in ['official'] + [n for n in results
                                        if n != 'official']:
                r = results[name]
                median, low, high = r['ms']
                peak = r['peak_bytes']
                rows.append([
                    f'{family} {arch}', size, args.batch, name,
                    f'{median:.0f} ({low:.0f}-{high:.0f})',
                    f'{base["ms"][0] / median:.2f}',
                    '-' if peak is None else format_mib(peak),
                    '-' if peak is None or not base['peak_bytes'] else
                    f'{peak / base["peak_bytes"]:.2f}'])
                print(' | '.join(str(c) for c in rows[-1]), flush=True)
    return header, rows


def run(args):
    """Measure and print the table of ``tools/analysis/peer_benchmark.py``;
    returns the exit status."""
    from mmvit.utils.benchmark import machine_description, markdown_table
    torch.set_num_threads(args.threads[0])
    if args.mode == 'inference':
        header, rows = run_inference(args)
        note = ('eval forward of the classifiers, batch 1, float32, median '
                f'of {args.repeat} after {args.warmup} warm-up, the models '
                'of a row interleaved; "best peer" is the fastest of the '
                'official model, its fused form, timm, the official model '
                'compiled (--compile) and the official (fused) model '
                'exported to ONNX at the size (static) and run by '
                'onnxruntime; mmvit onnxruntime: the deployed classifier '
                'exported the same way (static), dynamic: exported with '
                'dynamic sizes as detectors and segmentors are; '
                'max rel. diff: '
                "mmvit's logits against the official ones (same weights), "
                'at the classification size')
    else:
        header, rows = run_training(args)
        note = ('training step (forward, cross-entropy, backward, AdamW) of '
                'the classifiers on random images, drop path and dropout '
                f'off, median of {args.repeat} after {args.warmup} warm-up '
                'steps, the steps of a variant interleaved; peak memory of '
                "a step beyond the weights and the optimizer state (the "
                'PyTorch profiler\'s CPU allocator events)')
    table = markdown_table(header, rows)
    note += '; ' + machine_description(torch.device('cpu'),
                                       args.threads[0]) + '.'
    print('\n' + table + '\n\n' + note)
    from mmvit.utils.benchmark import write_markdown
    write_markdown(f'{table}\n\nMeasured by `tools/analysis/peer_benchmark.py '
                   f'--mode {args.mode}`: {note}\n', args.out, args.readme,
                   *readme_markers(args.mode))
    return 0


def readme_markers(mode):
    """The README lines between which ``--readme`` writes ``mode``'s table."""
    return f'<!-- peers-{mode}:start -->', f'<!-- peers-{mode}:end -->'


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
                        'end -->" lines of this file (e.g. docs/performance.md)')
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
