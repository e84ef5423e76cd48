"""Layers shared by several backbone families."""
from collections import OrderedDict

import torch
from mmcv.cnn import build_activation_layer, build_norm_layer
from torch import nn
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
