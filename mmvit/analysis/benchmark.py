"""Parameters, FLOPs, eval latency and peak memory of models (the library
behind ``tools/analysis/benchmark.py``; FLOPs by ``mmengine.analysis``).
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
import contextlib
import copy
import gc
import json
import os
import os.path as osp
import platform
import re
import statistics
import sys
import tempfile
import time
import traceback

import torch

SIZE_HELP = ('S (an SxS square) or HxW (height x width), e.g. 224 or '
             '800x1216')


# ----------------------------------------------------------------- sizes
def parse_size(text):
    """``'224'`` -> (224, 224); ``'800x1216'`` -> (800, 1216) (H, W)."""
    match = re.fullmatch(r'\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?', str(text))
    if not match:
        raise ValueError(f'invalid size {text!r}: expected {SIZE_HELP}')
    height = int(match.group(1))
    width = int(match.group(2)) if match.group(2) else height
    if height <= 0 or width <= 0:
        raise ValueError(f'invalid size {text!r}: sides must be positive; '
                         f'expected {SIZE_HELP}')
    return height, width


def size_arg(text):
    """``parse_size`` for argparse (an ArgumentTypeError on bad input)."""
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error))


def parse_flops_size(tokens):
    """``--flops-size`` tokens: ``S``, ``HxW`` or ``H W``; 0 skips (None)."""
    if len(tokens) == 2 and all(t.strip().isdigit() for t in tokens):
        tokens = [f'{tokens[0]}x{tokens[1]}']
    if len(tokens) != 1:
        raise ValueError(f'--flops-size: expected S, HxW or H W, got '
                         f'{" ".join(tokens)!r}')
    if tokens[0].strip() == '0':
        return None
    return parse_size(tokens[0])


def size_label(size):
    """(800, 1216) -> ``'800x1216'`` (height x width)."""
    return f'{size[0]}x{size[1]}'


def pixels(size):
    return size[0] * size[1]


# ---------------------------------------------------------------- device
def check_device(text):
    """The torch.device for ``text``; a clear SystemExit where unusable."""
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError) as error:
        raise SystemExit(f'benchmark: --device {text!r} is not a device '
                         f'({error}); use cpu, cuda or cuda:N')
    if device.type == 'cpu':
        return device
    if device.type != 'cuda':
        raise SystemExit(f'benchmark: --device {text!r}: only cpu and cuda '
                         f'are supported')
    if not torch.cuda.is_available():
        raise SystemExit(
            f'benchmark: --device {text!r}: CUDA is not available here '
            f'(torch {torch.__version__}, built for CUDA '
            f'{torch.version.cuda or "none"}, no usable GPU/driver); '
            f'use --device cpu')
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise SystemExit(f'benchmark: --device {text!r}: only {count} CUDA '
                         f'device(s) visible (cuda:0..cuda:{count - 1})')
    if device.index is None:
        device = torch.device('cuda', torch.cuda.current_device())
    return device


def cpu_name():
    """The CPU model from /proc/cpuinfo (or the platform's guess)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description(device, threads):
    """One line about where the numbers were measured."""
    if device.type == 'cuda':
        where = (f'{torch.cuda.get_device_name(device)} (CUDA '
                 f'{torch.version.cuda})')
    else:
        where = (f'{cpu_name()}, {threads} of {os.cpu_count()} logical '
                 f'CPUs')
    return f'{where}; torch {torch.__version__}'


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
def build_backbone(name, arch):
    """``mmvit.models.<name>(arch=arch)``, built after seeding torch's
    generator with 0 (reproducible random weights)."""
    from mmvit.families import backbone_types
    from mmvit.registry import MODELS
    if name not in backbone_types():
        raise SystemExit(f'benchmark: unknown --backbone {name!r}; '
                         f'allowed: {backbone_types()}')
    torch.manual_seed(0)
    return MODELS.get(name)(arch=arch)


class TensorForward(torch.nn.Module):
    """``model(x, data_samples, mode='tensor')`` of an OpenMMLab model as a
    one-input module (for timing and for mmengine.analysis).

    Detectors get one DetDataSample per image whose shapes are the input's
    (no resizing, scale factor 1); segmentors and classifiers need none.
    """

    def __init__(self, model, scope):
        super().__init__()
        self.model = model
        self.scope = scope

    def data_samples(self, inputs):
        if self.scope != 'mmdet':
            return None
        from mmdet.structures import DetDataSample
        shape = tuple(int(s) for s in inputs.shape[-2:])
        meta = dict(img_shape=shape, ori_shape=shape, pad_shape=shape,
                    batch_input_shape=shape, scale_factor=(1., 1.))
        return [DetDataSample(metainfo=meta) for _ in range(len(inputs))]

    def forward(self, inputs):
        return self.model(inputs, self.data_samples(inputs), mode='tensor')


def build_config_model(path, cfg_options=None):
    """The model of config ``path`` (through its default scope's registry),
    wrapped in :class:`TensorForward`; built after seeding torch's
    generator with 0, so that its random weights (and the number of
    proposals of a two-stage detector) are reproducible."""
    from mmvit.utils.config import build_model, load_config
    cfg = load_config(path, cfg_options=cfg_options)
    torch.manual_seed(0)
    return TensorForward(build_model(cfg), cfg.get('default_scope', 'mmdet'))


def count_params(module):
    return sum(p.numel() for p in module.parameters())


def _roi_counter(module):
    """A forward hook counting the RoIs of a two-stage detector's box head
    (the number of proposals the FLOPs depend on), or None."""
    model = getattr(module, 'model', module)
    bbox_head = getattr(getattr(model, 'roi_head', None), 'bbox_head', None)
    if bbox_head is None:
        return None, None
    seen = []
    handle = bbox_head.register_forward_hook(
        lambda mod, args, out: seen.append(int(args[0].shape[0])))
    return seen, handle


def sdpa_flop_jit(inputs, outputs):
    """Multiply-adds of ``scaled_dot_product_attention(q, k, v)``, which
    mmengine.analysis has no rule for: q k^T and attn v, as two matmuls
    (q: (..., L, E), k: (..., S, E), v: (..., S, Ev))."""
    from mmengine.analysis.jit_handles import get_shape
    q, k, v = (get_shape(value) for value in inputs[:3])
    batch = 1
    for side in q[:-2]:
        batch *= side
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def count_flops(module, size, memory_format=torch.contiguous_format):
    """Multiply-adds of one forward of one ``size`` (H, W) image, counted
    by mmengine.analysis.FlopAnalyzer; returns (flops, info) where info
    names the operators counted as 0 and, for two-stage detectors, the
    number of proposals."""
    import logging

    from mmengine.analysis import FlopAnalyzer
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)  # unsupported-operator notes
    device = next(module.parameters()).device
    generator = torch.Generator().manual_seed(0)
    inputs = torch.rand(1, 3, *size, generator=generator).to(
        device).contiguous(memory_format=memory_format)
    seen, handle = _roi_counter(module)
    try:
        analyzer = FlopAnalyzer(module, (inputs, ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        analyzer.set_op_handle('aten::scaled_dot_product_attention',
                               sdpa_flop_jit)
        with torch.no_grad():
            flops = analyzer.total()
        skipped = analyzer.unsupported_ops()
    finally:
        logger.setLevel(level)
        if handle is not None:
            handle.remove()
    # fvcore has no FLOP rule for element-wise operators (nor pooling, nor
    # eval-mode dropout) either; only the others are worth a note.
    trivial = ('aten::dropout', 'aten::feature_dropout', 'aten::addcmul',
               'aten::max_pool2d', 'aten::masked_fill', 'aten::lt',
               'aten::__or__', 'aten::__and__', 'aten::eq', 'aten::gt',
               'aten::add', 'aten::add_', 'aten::sub', 'aten::mul',
               'aten::mul_', 'aten::div', 'aten::neg', 'aten::abs',
               'aten::pad', 'aten::mean', 'aten::sum', 'aten::sigmoid',
               'aten::softmax', 'aten::exp', 'aten::sqrt', 'aten::log2',
               'aten::repeat', 'aten::sort', 'aten::rsub', 'aten::clamp',
               'aten::clamp_min', 'aten::pow', 'aten::reciprocal',
               'aten::gelu', 'aten::relu', 'aten::relu_', 'aten::hardswish',
               'aten::silu', 'aten::tanh', 'aten::norm',
               'aten::linalg_vector_norm', 'aten::topk', 'aten::max',
               'aten::min', 'aten::gather', 'aten::index', 'aten::cumsum')
    info = {'not counted': sorted(
        op.replace('prim::PythonOp.', '') for op in skipped
        if op not in trivial)}
    if seen:
        info['proposals'] = seen[-1]
    return flops, info


def flops_note(info):
    """The caveats of a :func:`count_flops` result, as one phrase."""
    parts = []
    if info.get('not counted'):
        parts.append(', '.join(info['not counted']) + ' counted as 0 (no '
                     'FLOP rule)')
    if info.get('proposals') is not None:
        parts.append(f'{info["proposals"]} RPN proposals')
    return ', '.join(parts)


# ---------------------------------------------------------------- timing
class Options:
    """How to run the forwards (the benchmark's command-line switches)."""

    def __init__(self, device='cpu', batch=1, repeat=5, warmup=1,
                 amp=False, channels_last=False, memory=True):
        self.device = torch.device(device)
        self.batch = batch
        self.repeat = repeat
        self.warmup = warmup
        self.amp = amp
        self.channels_last = channels_last
        self.memory = memory

    @property
    def cuda(self):
        return self.device.type == 'cuda'

    @property
    def memory_format(self):
        return (torch.channels_last if self.channels_last else
                torch.contiguous_format)

    def autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        dtype = torch.float16 if self.cuda else torch.bfloat16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def describe(self):
        words = []
        if self.amp:
            words.append('autocast ' + ('float16' if self.cuda
                                        else 'bfloat16'))
        else:
            words.append('float32')
        if self.channels_last:
            words.append('channels-last')
        return ', '.join(words)


def prepare(module, opts, deploy=False):
    """Eval mode on the device (channels-last if asked), deployed if asked."""
    module = module.to(opts.device).eval()
    if deploy:
        from mmvit.deploy import switch_to_deploy
        switch_to_deploy(module)
    if opts.channels_last:
        module = module.to(memory_format=torch.channels_last)
    return module


def make_inputs(sizes, opts):
    generator = torch.Generator().manual_seed(0)
    return {
        size: torch.rand(opts.batch, 3, *size, generator=generator).to(
            opts.device).contiguous(memory_format=opts.memory_format)
        for size in sizes
    }


def time_forwards(modules, sizes, opts):
    """Timed forwards of every module in ``modules`` (a dict name ->
    module) at every size: {name: {size: [seconds]}}, and on CUDA the peak
    memory (bytes beyond those allocated before) of a forward, {name:
    {size: bytes}}. Within each repeat every module runs at every size in
    turn, so slow drifts of a shared machine affect all alike."""
    inputs = make_inputs(sizes, opts)
    sync = ((lambda: torch.cuda.synchronize(opts.device)) if opts.cuda
            else (lambda: None))
    times = {name: {s: [] for s in sizes} for name in modules}
    peaks = {name: {} for name in modules}
    with torch.no_grad(), opts.autocast():
        for i in range(opts.warmup + opts.repeat):
            for name, module in modules.items():
                for size in sizes:
                    sync()
                    if opts.cuda:
                        torch.cuda.reset_peak_memory_stats(opts.device)
                        base = torch.cuda.memory_allocated(opts.device)
                    start = time.perf_counter()
                    module(inputs[size])
                    sync()
                    if i >= opts.warmup:
                        times[name][size].append(time.perf_counter() - start)
                    if opts.cuda:
                        peaks[name][size] = max(
                            peaks[name].get(size, 0),
                            torch.cuda.max_memory_allocated(opts.device) -
                            base)
    return times, peaks


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence the profiler library's start/stop lines (and, on CUDA
    builds without a GPU, its device-count error) written to fd 2."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def peak_memory_of(fn, device='cpu'):
    """Peak bytes of tensor memory that one call of ``fn`` allocates beyond
    what was live before it. On CUDA: ``max_memory_allocated``. On the CPU:
    the running sum of the allocation and free events the PyTorch profiler
    records from the CPU allocator (``profile_memory=True``); frees of
    memory allocated before the call are not events, so what was live
    before (weights, inputs) does not count."""
    device = torch.device(device)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    # torch.autograd.profiler.profile, not torch.profiler.profile: the
    # latter imports torch._inductor on start (seconds, for nothing here).
    from torch.autograd.profiler import profile
    with _quiet_native_stderr():
        with profile(use_kineto=True, profile_memory=True) as prof:
            fn()
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'trace.json')
        with _quiet_native_stderr():
            prof.export_chrome_trace(path)
        with open(path) as f:
            trace = json.load(f)
    events = trace['traceEvents'] if isinstance(trace, dict) else trace
    memory = [e for e in events if e.get('name') == '[memory]'
              and e.get('args', {}).get('Device Type', 0) == 0]
    memory.sort(key=lambda e: e['ts'])  # stable: ties keep trace order
    live = peak = 0
    for event in memory:
        live += int(event['args']['Bytes'])
        peak = max(peak, live)
    return peak


def cpu_peak_memory(module, size, opts):
    """Peak bytes of CPU tensor memory of one forward at ``size``
    (:func:`peak_memory_of`)."""
    inputs = make_inputs([size], opts)[size]

    def forward():
        with torch.no_grad(), opts.autocast():
            module(inputs)

    return peak_memory_of(forward)


NOISY_SPREAD = 1.5


def noisy(stats):
    """True when the slowest of the timed runs took more than
    ``NOISY_SPREAD`` times the fastest: the machine was not quiet (on a
    shared CPU, OpenMP threads waiting for descheduled peers can slow small
    operators many-fold), and the numbers should be measured again."""
    median, low, high = stats
    return low > 0 and high / low > NOISY_SPREAD


def summarize(seconds):
    """(median, min, max) in milliseconds."""
    ms = [t * 1000 for t in seconds]
    return statistics.median(ms), min(ms), max(ms)


COMPILE_RTOL = 1e-4


def relative_difference(ref, out):
    """max |out - ref| / max |ref| of two tensors."""
    return float((out - ref).abs().max() / ref.abs().max().clamp_min(1e-12))


def max_relative_difference(reference, other, size, opts):
    """The largest :func:`relative_difference` over the floating-point
    output tensors of two modules on one random ``size`` input (``opts``'
    batch, device and memory format)."""
    x = make_inputs([size], opts)[size]
    with torch.no_grad():
        outs = [torch.utils._pytree.tree_leaves(m(x))
                for m in (reference, other)]
    return max((relative_difference(a, b) for a, b in zip(*outs)
                if isinstance(a, torch.Tensor) and a.is_floating_point()),
               default=0.)


def measure(modules, sizes, opts):
    """Time ``modules`` ({name: prepared module}) at ``sizes`` (sorted by
    pixels) and measure their peak memory at the largest size; returns
    {name: dict(ms={size: (median, min, max)}, peak_bytes=int or None)}."""
    times, cuda_peaks = time_forwards(modules, sizes, opts)
    results = {}
    for name, module in modules.items():
        peak = None
        if opts.cuda:
            peak = cuda_peaks[name].get(sizes[-1])
        elif opts.memory:
            peak = cpu_peak_memory(module, sizes[-1], opts)
        results[name] = dict(
            ms={s: summarize(times[name][s]) for s in sizes},
            peak_bytes=peak)
    return results


# ---------------------------------------------------------------- output
def format_mib(nbytes):
    mib = nbytes / 2**20
    return f'{mib:.0f}' if mib >= 100 else f'{mib:.1f}'


def markdown_table(header, rows):
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)


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


