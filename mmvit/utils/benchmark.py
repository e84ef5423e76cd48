"""Measuring models: parameters, FLOPs (``mmengine.analysis``), eval
latency timed one forward at a time with models and sizes interleaved in
each repeat, peak memory, and the tables of the tools in
``tools/analysis/`` (what each column measures: their docstrings)."""
import argparse
import contextlib
import json
import os
import os.path as osp
import platform
import re
import statistics
import sys
import tempfile
import time

import torch

START = '<!-- model-zoo:start -->'
END = '<!-- model-zoo:end -->'


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


def replace_between_markers(text, content, start=START, end=END):
    """``text`` with the lines between ``start`` and ``end`` replaced by
    ``content``; the markers stay. ValueError unless each occurs once, in
    that order."""
    if text.count(start) != 1 or text.count(end) != 1:
        raise ValueError(f'expected exactly one {start!r} and one {end!r} '
                         f'line (found {text.count(start)} and '
                         f'{text.count(end)})')
    i, j = text.index(start), text.index(end)
    if j < i:
        raise ValueError(f'{end!r} comes before {start!r}')
    return (text[:i + len(start)] + '\n\n' + content.strip('\n') + '\n\n' +
            text[j:])


def write_markdown(markdown, out=None, readme=None, start=START, end=END):
    """Write ``markdown`` to the file ``out`` and between the ``start`` and
    ``end`` lines of the file ``readme`` (each where given)."""
    if out:
        with open(out, 'w') as f:
            f.write(markdown)
    if readme:
        with open(readme) as f:
            text = f.read()
        try:
            text = replace_between_markers(text, markdown, start, end)
        except ValueError as error:
            raise ValueError(f'--readme {readme}: {error}')
        with open(readme, 'w') as f:
            f.write(text)


