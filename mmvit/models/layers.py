"""Layers shared by several backbone families."""
from collections import OrderedDict

import torch
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmengine.utils.dl_utils import is_norm
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint


class ConvNormAct(nn.Sequential):
    """Conv2d -> norm -> activation, each optional after the conv.

    The children are named ``conv``, ``bn`` and ``act`` (as in mmcv's
    ``ConvModule``), but a conv bias before the norm is allowed without a
    warning: several official checkpoints have one. ``act_first=True``
    applies the activation before the norm (CMT's order).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1,
                 padding=0, groups=1, bias=True, norm_cfg=dict(type='BN'),
                 act_cfg=None, act_first=False):
        layers = OrderedDict(conv=nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding,
            groups=groups, bias=bias))
        norm = None if norm_cfg is None else build_norm_layer(
            norm_cfg, out_channels)[1]
        act = None if act_cfg is None else build_activation_layer(act_cfg)
        for name, layer in ((('act', act), ('bn', norm)) if act_first else
                            (('bn', norm), ('act', act))):
            if layer is not None:
                layers[name] = layer
        super().__init__(layers)


class ConvStem(nn.Sequential):
    """:class:`ConvNormAct` layers (integer paddings) applied in turn.

    A large output is computed in bands of rows (:func:`row_bands`, sized
    for the widest intermediate map) where :func:`may_band` allows it
    (inference with position-wise norms), each band from the input rows its
    convolutions read, so no intermediate map is ever whole; the same
    output as in one piece.
    """

    def forward(self, x):
        convs = [layer.conv for layer in self]
        heights, widths = [x.shape[2]], [x.shape[3]]
        for conv in convs:
            heights.append(conv_output_size(conv, heights[-1], 0))
            widths.append(conv_output_size(conv, widths[-1], 1))
        sizes = [conv.out_channels * height * width for conv, height, width
                 in zip(convs, heights[1:], widths[1:])]
        bands = row_bands(x.shape[0], convs[-1].out_channels, heights[-1],
                          widths[-1], x.element_size(),
                          temporaries=-(-max(sizes) // sizes[-1]))
        if len(bands) > 1 and not may_band(self):
            bands = [(0, heights[-1])]
        if len(bands) == 1:
            return super().forward(x)
        (out, ) = in_bands(
            lambda a, b: (self._rows(x, heights, a, b), ), bands)
        return out

    def _rows(self, x, heights, start, stop):
        """Rows ``[start, stop)`` of the output from the input rows they
        read; zero rows stand for the padding where the reads pass the
        edges of a map."""
        wanted, reads = [(start, stop)], []
        for layer, height in zip(reversed(self), reversed(heights[:-1])):
            low, high = conv_reads(layer.conv, *wanted[0])
            reads.insert(0, (low, high))
            wanted.insert(0, (max(low, 0), min(high, height)))
        y = x[:, :, wanted[0][0]:wanted[0][1]]
        for layer, (low, high), (first, last) in zip(self, reads, wanted):
            conv = layer.conv
            if first - low or high - last:
                y = nn.functional.pad(y, (0, 0, first - low, high - last))
            y = nn.functional.conv2d(y, conv.weight, conv.bias, conv.stride,
                                     (0, conv.padding[1]), conv.dilation,
                                     conv.groups)
            for child in list(layer)[1:]:
                y = child(y)
        return y


def conv_output_size(conv, size, dim):
    """The output size along ``dim`` (0: rows, 1: columns) of the Conv2d
    ``conv`` (integer padding) for an input of ``size``."""
    kernel, stride = conv.kernel_size[dim], conv.stride[dim]
    padding, dilation = conv.padding[dim], conv.dilation[dim]
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv_reads(conv, start, stop):
    """Rows ``[low, high)`` of the zero-padded input of the Conv2d ``conv``
    that its output rows ``[start, stop)`` read (``low < 0`` and ``high``
    past the input where they reach into the padding)."""
    kernel, stride = conv.kernel_size[0], conv.stride[0]
    padding, dilation = conv.padding[0], conv.dilation[0]
    return (start * stride - padding,
            (stop - 1) * stride - padding + dilation * (kernel - 1) + 1)


#: the largest intermediate (bytes) that a position-wise layer makes in one
#: piece; above it the map is processed in bands of rows. glibc's malloc
#: serves blocks above 32 MB with fresh mmap()s, which the first touch
#: page-faults on every forward: without bands the widest tensors of a
#: 1024x1024 input cost about as much again as their arithmetic.
BAND_BYTES = 8 << 20


def row_bands(batch, channels, height, width, itemsize=4, temporaries=1):
    """``[(start, stop), ...]`` rows splitting a (batch, channels, height,
    width) map so that each band holds at most :data:`BAND_BYTES` /
    ``temporaries`` (at least one row), as few and as even bands as that
    allows; one band when the whole map fits. ``temporaries``: the number
    of band-sized tensors a layer makes per band (1 for a layer whose
    widest tensor is the banded one)."""
    rows = max(1, BAND_BYTES // temporaries //
               max(1, batch * channels * width * itemsize))
    if rows >= height:
        return [(0, height)]
    count = (height + rows - 1) // rows  # bands; then evened out
    rows = (height + count - 1) // count
    return [(r, min(r + rows, height)) for r in range(0, height, rows)]


def with_halo(x, start, stop, halo):
    """Rows ``[start - halo, stop + halo)`` of the NCHW map ``x`` (those
    inside it) and the slice of that window's rows that is ``[start,
    stop)``: a stack of up to ``halo`` zero-padded 3x3 convolutions over
    the window gives the map's own values on those rows."""
    low, high = max(start - halo, 0), min(stop + halo, x.shape[2])
    window = x if (low, high) == (0, x.shape[2]) else x[:, :, low:high]
    return window, slice(start - low, stop - low)


def in_bands(fn, bands):
    """The maps ``fn(start, stop)`` returns for each band of rows, each
    put together into one map (written band by band into a map whose
    dimensions lie in memory in the first band's order; the first band's
    maps as they are when there is one band)."""
    if len(bands) == 1:
        return fn(*bands[0])
    outs = None
    height = bands[-1][1]
    for start, stop in bands:
        parts = fn(start, stop)
        if outs is None:
            outs = [empty_like_rows(part, height) for part in parts]
        for out, part in zip(outs, parts):
            out[:, :, start:stop] = part
    return tuple(outs)


def empty_like_rows(x, height):
    """An uninitialised map of the NCHW map ``x``'s batch, channels and
    width with ``height`` rows, its dimensions in memory in ``x``'s order
    (outermost first by stride)."""
    order = sorted(range(4), key=lambda dim: -x.stride(dim))
    shape = [*x.shape[:2], height, x.shape[3]]
    return x.new_empty([shape[dim] for dim in order]).permute(
        *[order.index(dim) for dim in range(4)])


def may_band(module):
    """Whether ``module`` may compute a large map in bands of rows with its
    norms: autograd is not recording (in the backward pass the gradient
    of each band's slice of a map has the whole map's size), and
    every normalisation layer in it maps each position on its own, a
    BatchNorm in eval mode with running statistics (a per-channel affine
    map). A training BatchNorm, GroupNorm, LayerNorm over channels-first
    maps and InstanceNorm take statistics over the whole map."""
    return not torch.is_grad_enabled() and all(
        isinstance(m, _BatchNorm) and not m.training
        and m.running_mean is not None
        for m in module.modules() if is_norm(m))


def project_parts(layer, x, parts, dim):
    """``layer(x).chunk(parts, dim)`` (a ``Linear`` or a 1x1 ``Conv2d`` that
    projects to ``parts`` stacked outputs, e.g. q, k, v); each part computed
    with its own slice of the weights when the whole output would exceed
    :data:`BAND_BYTES`, so that no temporary holds all of them."""
    if x.numel() // x.shape[dim] * layer.weight.shape[0] * \
            x.element_size() <= BAND_BYTES:
        return layer(x).chunk(parts, dim)
    return tuple(project_part(layer, x, part, parts)
                 for part in range(parts))


def project_part(layer, x, part, parts):
    """Part ``part`` of ``parts`` stacked outputs of ``layer`` (a
    ``Linear`` or a 1x1 ``Conv2d``) on x, computed with that part's slice
    of the weights alone."""
    weight = layer.weight.chunk(parts, 0)[part]
    bias = None if layer.bias is None else layer.bias.chunk(parts, 0)[part]
    if isinstance(layer, nn.Linear):
        return nn.functional.linear(x, weight, bias)
    return layer._conv_forward(x, weight, bias)


def float32_on_cpu(layer, x):
    """``layer(x)`` in float32 also under CPU autocast (the input cast to
    the layer's dtype, autocast off inside; without autocast it is just
    ``layer(x)``). For the strided depthwise convolutions, whose bfloat16
    backward costs the CPU many times its float32 one (see
    docs/performance.md)."""
    with torch.autocast('cpu', enabled=False):
        return layer(x.to(next(layer.parameters()).dtype))


def run_blocks(blocks, x, *args, with_cp=False):
    """``x`` through each of ``blocks`` in turn (``block(x, *args)``).

    With ``with_cp``, a block that trains with gradients enabled is run
    under ``torch.utils.checkpoint`` (non-reentrant): its activations are
    recomputed in the backward pass instead of being kept (the RNG state is
    replayed, so drop path draws the same).
    """
    for block in blocks:
        if with_cp and block.training and torch.is_grad_enabled():
            x = checkpoint(block, x, *args, use_reentrant=False)
        else:
            x = block(x, *args)
    return x


class ConvMlp(nn.Module):
    """Two 1x1 convolutions with an activation between: C -> hidden -> C,
    computed in bands of rows where the hidden map is large
    (:func:`row_bands`; position-wise, so the result is the same)."""

    def __init__(self, channels, hidden_channels, act_cfg=dict(type='GELU'),
                 drop=0.):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden_channels, 1)
        self.act = build_activation_layer(act_cfg)
        self.fc2 = nn.Conv2d(hidden_channels, channels, 1)
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()

    def forward(self, x):
        bands = row_bands(x.shape[0], self.fc1.out_channels, *x.shape[2:],
                          x.element_size())
        outs = [self.drop(self.fc2(self.drop(self.act(self.fc1(
            x[:, :, start:stop] if len(bands) > 1 else x)))))
            for start, stop in bands]
        return outs[0] if len(outs) == 1 else torch.cat(outs, 2)


def transformer_init_cfg(norm_layers=('LayerNorm', )):
    """The init of timm-style vision transformers, as mmengine init_cfg:
    truncated normal (std 0.02) linear layers, fan-out Kaiming normal
    convolutions, unit-weight zero-bias norms; biases zero."""
    return [
        dict(type='TruncNormal', layer='Linear', std=.02, bias=0.),
        dict(type='Kaiming', layer='Conv2d', mode='fan_out', bias=0.),
        dict(type='Constant', layer=list(norm_layers), val=1., bias=0.),
    ]


def drop_path_rates(depths, drop_path_rate):
    """Per-block rates rising linearly from 0 to ``drop_path_rate``.

    Returns one list per stage; block ``j`` of all ``N`` blocks gets
    ``rate * j / (N - 1)``.
    """
    total = sum(depths)
    rates = [drop_path_rate * j / max(total - 1, 1) for j in range(total)]
    out, start = [], 0
    for depth in depths:
        out.append(rates[start:start + depth])
        start += depth
    return out


class DerivedTensorCache:
    """Tensors derived from a parameter, kept for inference.

    ``get(param, key, compute)`` returns ``compute()`` and keeps it under
    ``key`` (with the parameter's device and dtype) while the parameter is
    unchanged: same storage and same version counter, which every in-place
    update (an optimiser step, ``load_state_dict``) increments. When autograd
    records (a trainable parameter with grad enabled), nothing is cached.
    The ``capacity`` most recently used keys are kept.
    """

    def __init__(self, capacity=2):
        self.capacity = capacity
        self._entries = OrderedDict()

    def get(self, param, key, compute):
        if torch.is_grad_enabled() and param.requires_grad:
            return compute()
        full_key = (key, param.device, param.dtype)
        version = (param.data_ptr(), param._version)
        hit = self._entries.get(full_key)
        if hit is not None and hit[0] == version:
            self._entries.move_to_end(full_key)
            return hit[1]
        with torch.no_grad():
            value = compute()
        self._entries[full_key] = (version, value)
        self._entries.move_to_end(full_key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return value

    def clear(self):
        self._entries.clear()
