"""Parameters, FLOPs, eval latency and peak memory of models (FLOPs by
``mmengine.analysis``; the measuring functions: ``mmvit.utils.benchmark``).
Latency is timed one forward at a time, the models and sizes interleaved
within each repeat (``torch.utils.benchmark.Timer`` adds warm-up runs to
every measurement, which would break the interleaving).

    # backbone variants (an mmvit.models class and its arch names)
    python tools/analysis/benchmark.py --backbone CastlingViT \\
        --archs xs s m --sizes 256 512 1024 --threads 2
    # whole models (detector, segmentor, classifier) from configs
    python tools/analysis/benchmark.py \\
        --config configs/efficientvit/retinanet_efficientvit_m4.py \\
        --sizes 512 800x1216 --flops-size 800x1280

Sizes are HEIGHT x WIDTH everywhere (``--sizes``, ``--flops-size``, the
table): ``224`` is 224x224 and ``800x1216`` an input tensor of shape
(batch, 3, 800, 1216). The "1280x800" of the detection papers is a
landscape image 1280 wide and 800 high, here ``800x1280``.

What is timed:

* ``--backbone``: ``backbone(x)``, the feature maps of every output stage;
* ``--config``: the model's tensor forward ``model(x, data_samples,
  mode='tensor')`` (``_forward``) on an already normalised input, without
  the data preprocessor and without post-processing: detectors return
  their head outputs (RetinaNet: class scores and box deltas of every
  level; Mask R-CNN: RPN, RPN proposal decoding and NMS, then the box head
  on the proposals and the mask head on the first 100 of them, without the
  final box NMS and mask pasting), segmentors the decode head's logits at
  1/4 resolution, classifiers their logits. The weights are those the
  modules are constructed with (``init_weights`` is not called, so the
  configs' checkpoint files are not needed); latency does not depend on
  them, but Mask R-CNN's cost depends on the number of proposals, which
  the FLOPs note reports.

For each model: parameters; multiply-adds of one image at ``--flops-size``
(mmengine.analysis.FlopAnalyzer, the fvcore convention of one multiply-add
= 1 FLOP, plus a rule for scaled_dot_product_attention; operators it has
no rule for, e.g. NMS and RoIAlign, count 0 and are named in the notes;
the count traces the eager forward); the median (with min and max) of
``--repeat`` timed eval forwards under ``torch.no_grad()`` after
``--warmup`` untimed ones, batch ``--batch``, the sizes (and models, with
``--compare-deploy``) alternating within each repeat so that slow drifts of
a shared machine affect all alike (a size whose slowest run took over 1.5x
its fastest is flagged NOISY in the notes); images per second at the
smallest size; peak memory of one forward at the largest size; and
t(largest) / t(second largest), the largest by pixel count: about the pixel
ratio for a cost linear in the number of tokens (4 for 512 -> 1024),
approaching its square for quadratic attention.

Peak memory ("peak MiB") is the most tensor memory the forward holds at
once beyond what was allocated before it (weights and the input are not
counted; activations, kernel workspaces and outputs are). On CUDA it is
``torch.cuda.max_memory_allocated()`` minus ``memory_allocated()`` before a
timed forward. On CPU it is measured in one extra, untimed forward under
the PyTorch profiler with ``profile_memory=True``: the running sum of the
CPU allocator's allocation and free events, i.e. the same quantity for
PyTorch's CPU allocator (not the process RSS, which the malloc tuning
below keeps high on purpose). ``--no-memory`` skips it.

``--device cpu|cuda|cuda:N``; ``--threads`` sets torch's CPU threads;
``--amp`` runs the forwards under ``torch.autocast`` (bfloat16 on CPU,
float16 on CUDA; FLOPs are counted in float32); ``--channels-last``
converts the model and the inputs to the channels-last memory format;
``--deploy`` times the deployed model (``mmvit.deploy.switch_to_deploy``),
``--compare-deploy`` both, with a speed-up column;
``--compare-onnxruntime`` adds the deployed model exported to ONNX with
dynamic sizes and run by onnxruntime (CPU; the export traced at the
smallest size), with its speed-up over eval, after checking its outputs
within 1e-4 relative; ``--compare-compile``
likewise times the eval model against ``torch.compile`` of it (one graph
per size, compiled in the warm-up forwards) after checking that their
outputs agree within 1e-4 relative. On CPU, glibc malloc is
first told to keep freed memory (see ``tune_glibc_malloc``;
``--no-malloc-tuning`` to measure the defaults). Prints a markdown table;
``--out`` also writes it, ``--plot`` writes a PNG of latency against input
pixels, one line per model.
"""
import argparse
import copy
import gc
import os.path as osp
import sys
import tempfile
import traceback

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

import torch  # noqa: E402

from mmvit.utils.benchmark import (  # noqa: E402
    COMPILE_RTOL, NOISY_SPREAD, Options, SIZE_HELP, build_backbone,
    build_config_model, check_device, count_flops, count_params,
    flops_note, format_mib, machine_description, make_inputs,
    markdown_table, max_relative_difference, measure, noisy,
    parse_flops_size, pixels, prepare, size_arg, size_label)


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


# ---------------------------------------------------------------- models
def plot_latency(curves, path, ylabel):
    """Latency (ms) against input pixels, one line per model; ``curves``
    is {label: {size: ms}}."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for label, medians in curves.items():
        sizes = sorted(medians, key=pixels)
        if not sizes:
            continue
        ax.plot([pixels(s) for s in sizes], [medians[s] for s in sizes],
                marker='o', label=label)
    ax.set_xlabel('input pixels (H x W)')
    ax.set_ylabel(ylabel)
    ax.set_xscale('log')
    ax.set_yscale('log')
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize='small')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------ main
def run(args):
    """Measure and print the table for the parsed arguments of
    ``tools/analysis/benchmark.py``; returns the exit status."""
    device = check_device(args.device)
    tuned = (device.type == 'cpu' and not args.no_malloc_tuning
             and tune_glibc_malloc())
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    opts = Options(device, args.batch, args.repeat, args.warmup, args.amp,
                   args.channels_last, memory=not args.no_memory)
    sizes = sorted(dict.fromkeys(args.sizes), key=pixels)
    big, small = sizes[-1], sizes[0]

    if args.backbone:
        items = [(arch, lambda a=arch: build_backbone(args.backbone, a))
                 for arch in args.archs]
        subject = args.backbone
    else:
        items = [(osp.splitext(osp.basename(p))[0],
                  lambda p=p: build_config_model(p, args.cfg_options))
                 for p in args.config]
        subject = 'models of ' + ', '.join(name for name, _ in items)

    header = ['model' if args.config else 'variant', 'params (M)']
    if args.flops_size:
        header.append(f'GFLOPs @{size_label(args.flops_size)}')
    header += [f'{size_label(s)} ms (min-max)' for s in sizes]
    header.append(f'img/s @{size_label(small)}')
    with_memory = device.type == 'cuda' or not args.no_memory
    if with_memory:
        header.append(f'peak MiB @{size_label(big)}')
    if len(sizes) > 1:
        header.append(f't({size_label(big)})/t({size_label(sizes[-2])})')
    if args.compare_deploy:
        header.append(f'deploy speed-up @{size_label(big)}')
    if args.compare_onnxruntime:
        header.append(f'onnxruntime speed-up @{size_label(big)}')
    if args.compare_compile:
        header.append(f'compile speed-up @{size_label(big)}')

    rows, curves, flops_notes, noisy_sizes, failures = [], {}, [], [], []
    compile_diffs = []  # 'name difference' of each compiled model

    def add_checked(variants, name, key, label, what, module):
        """``variants[key] = module`` after checking its outputs against
        ``variants[name]``'s (RuntimeError beyond COMPILE_RTOL); the
        difference goes into the notes under ``label``."""
        diff = max_relative_difference(variants[name], module, small, opts)
        compile_diffs.append(f'{label} {diff:.1e}')
        if diff > COMPILE_RTOL:
            raise RuntimeError(
                f'{name}: {what} changed the outputs (max relative '
                f'difference {diff:.1e} > {COMPILE_RTOL})')
        variants[key] = module

    def run_model(name, build):
        model = build()
        variants = {name: prepare(model, opts, deploy=args.deploy)}
        if args.compare_deploy:
            deployed = copy.deepcopy(variants[name])
            variants[name + ' deployed'] = prepare(deployed, opts,
                                                   deploy=True)
        if args.compare_onnxruntime:
            from mmvit.deploy import switch_to_deploy
            from mmvit.export.onnx import onnx_runtime_module
            with tempfile.TemporaryDirectory() as folder:
                ort_module = onnx_runtime_module(
                    switch_to_deploy(copy.deepcopy(model)),
                    osp.join(folder, 'model.onnx'),
                    make_inputs([small], opts)[small], args.threads)
            add_checked(variants, name, name + ' onnxruntime',
                        name + ' onnxruntime', 'onnxruntime', ort_module)
        if args.compare_compile:
            add_checked(variants, name, name + ' compiled', name,
                        'torch.compile',
                        torch.compile(variants[name], dynamic=False))
        measured = measure(variants, sizes, opts)
        for key, module in variants.items():
            result = measured[key]
            # a compiled module shares its parameters; count and trace the
            # eager one
            module = getattr(module, '_orig_mod', module)
            n_params = count_params(module)
            row = [key, f'{n_params / 1e6:.2f}']
            if args.flops_size:
                flops, info = count_flops(module, args.flops_size,
                                          opts.memory_format)
                row.append(f'{flops / 1e9:.3f}')
                note = flops_note(info)
                if note:
                    flops_notes.append(f'{key}: {note}')
            medians = {s: result['ms'][s][0] for s in sizes}
            row += [f'{m:.1f} ({lo:.1f}-{hi:.1f})'
                    for m, lo, hi in (result['ms'][s] for s in sizes)]
            row.append(f'{1000 * args.batch / medians[small]:.1f}')
            if with_memory:
                peak = result['peak_bytes']
                row.append('-' if peak is None else format_mib(peak))
            if len(sizes) > 1:
                row.append(f'{medians[big] / medians[sizes[-2]]:.2f}')
            base = measured[name]['ms'][big][0]
            for flag, suffix in ((args.compare_deploy, ' deployed'),
                                 (args.compare_onnxruntime, ' onnxruntime'),
                                 (args.compare_compile, ' compiled')):
                if flag:
                    row.append(f'{base / medians[big]:.2f}'
                               if key == name + suffix else '')
            rows.append(row)
            label = (f'{args.backbone} {key}' if args.backbone else key)
            noisy_sizes.extend(f'{key} @{size_label(s)}' for s in sizes
                               if noisy(result['ms'][s]))
            curves[label] = medians
            print(f'{label}: {n_params} parameters, ' + ', '.join(
                f'{size_label(s)}: {m:.1f} ms' for s, m in medians.items()),
                flush=True)

    for name, build in items:
        try:
            run_model(name, build)
        except Exception as error:  # noqa: BLE001  (one row, not the run)
            traceback.print_exc()
            message = (str(error).strip().splitlines() or [''])[0][:300]
            if args.amp and 'BFloat16' in message + repr(error):
                message += (' (under --amp on CPU, with bfloat16: e.g. '
                            "mmcv's CPU NMS takes float32 only)")
            failures.append(f'{name}: {type(error).__name__}: {message}')
            rows.append([f'{name} [failed]'] + [''] * (len(header) - 1))
            print(f'{name}: FAILED, {failures[-1]}', file=sys.stderr,
                  flush=True)
        gc.collect()

    table = markdown_table(header, rows)
    mode = ' deployed' if args.deploy else ''
    notes = [
        f'{subject}{mode}, eval forward, batch {args.batch}, {device}, '
        f'{args.threads} threads, {opts.describe()}, median of '
        f'{args.repeat} after {args.warmup} warm-up, sizes (H x W) '
        f'interleaved; glibc malloc {"tuned" if tuned else "default"}; '
        f'{machine_description(device, args.threads)}'
    ]
    if args.flops_size:
        notes.append('GFLOPs: multiply-adds of one image (mmengine.analysis)'
                     + ''.join(f'; {n}' for n in flops_notes))
    if with_memory:
        notes.append('peak MiB: tensor memory of one forward beyond the '
                     'weights and input (' + (
                         'torch.cuda.max_memory_allocated' if device.type ==
                         'cuda' else 'CPU allocator events of the PyTorch '
                         'profiler') + ')')
    if compile_diffs:
        notes.append('compiled or onnxruntime against eval outputs at '
                     f'{size_label(small)}, max relative difference: ' +
                     ', '.join(compile_diffs))
    if noisy_sizes:
        notes.append(f'NOISY (slowest run > {NOISY_SPREAD}x the fastest; '
                     f'the machine was busy, measure again): ' +
                     ', '.join(noisy_sizes))
    if failures:
        notes.append('FAILED: ' + '; '.join(failures).replace('|', '/'))
    note = '\n\n' + '\n'.join(notes)
    print('\n' + table + note)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table + note + '\n')
    if args.plot and curves:
        plot_latency(curves, args.plot,
                     f'eval latency, batch {args.batch} (ms)')
    return 1 if failures else 0


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        epilog='Sizes are height x width. See the module docstring for what '
        'each column measures.')
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument('--backbone',
                      help='a backbone class of mmvit.models, e.g. '
                      'CastlingViT, CASViT, CMT, EfficientViT (with --archs)')
    what.add_argument('--config', nargs='+', metavar='CONFIG',
                      help='config files; their whole models are built '
                      'through the registries and their tensor forward timed')
    parser.add_argument('--archs', nargs='+', help='arch names of --backbone')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of every --config, key=value')
    parser.add_argument('--sizes', nargs='+', type=size_arg,
                        default=[(256, 256), (512, 512), (1024, 1024)],
                        metavar='SIZE', help=f'input sizes: {SIZE_HELP}')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--threads', type=int, default=2,
                        help='torch CPU threads')
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--device', default='cpu',
                        help='cpu, cuda or cuda:N')
    parser.add_argument('--amp', action='store_true',
                        help='torch.autocast: bfloat16 on CPU, float16 on '
                        'CUDA')
    parser.add_argument('--channels-last', action='store_true',
                        help='channels-last model and inputs')
    parser.add_argument('--out', help='also write the table to this file')
    parser.add_argument('--plot', help='write a PNG of latency against '
                        'input pixels, one line per model')
    parser.add_argument('--flops-size', nargs='+', default=['224'],
                        metavar='SIZE',
                        help='input of the FLOPs column (one image): S, HxW '
                        'or H W (height, width); 0 skips it. Default 224')
    deploy = parser.add_mutually_exclusive_group()
    deploy.add_argument('--deploy', action='store_true',
                        help='time the deployed model '
                        '(mmvit.deploy.switch_to_deploy)')
    deploy.add_argument('--compare-deploy', action='store_true',
                        help='time the eval and the deployed model, '
                        'interleaved, with a speed-up column')
    parser.add_argument('--compare-onnxruntime', action='store_true',
                        help='also time the deployed model exported to ONNX '
                        '(dynamic sizes) in onnxruntime, interleaved, with a '
                        'speed-up column (outputs checked within 1e-4 '
                        'first)')
    parser.add_argument('--compare-compile', action='store_true',
                        help='time the eval model and torch.compile of it, '
                        'interleaved, with a speed-up column (outputs '
                        'checked equal within 1e-4 first)')
    parser.add_argument('--no-memory', action='store_true',
                        help='skip the CPU peak-memory forward')
    parser.add_argument('--no-malloc-tuning', action='store_true',
                        help='keep glibc malloc defaults (see '
                        'tune_glibc_malloc)')
    args = parser.parse_args(argv)
    if args.backbone and not args.archs:
        parser.error('--backbone needs --archs')
    if args.config and args.archs:
        parser.error('--archs goes with --backbone, not --config')
    for name in ('batch', 'threads', 'repeat'):
        if getattr(args, name) < 1:
            parser.error(f'--{name} must be at least 1')
    if args.warmup < 0:
        parser.error('--warmup must be at least 0')
    try:
        args.flops_size = parse_flops_size(args.flops_size)
    except ValueError as error:
        parser.error(str(error))
    for path in args.config or ():
        if not osp.isfile(path):
            parser.error(f'--config {path!r}: no such file')
    return args


def main(argv=None):
    return run(parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
