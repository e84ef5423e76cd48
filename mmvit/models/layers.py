"""Layers shared by several backbone families."""
from collections import OrderedDict

import torch
from mmcv.cnn import build_activation_layer, build_norm_layer
from torch import nn


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


class ConvMlp(nn.Module):
    """Two 1x1 convolutions with an activation between: C -> hidden -> C."""

    def __init__(self, channels, hidden_channels, act_cfg=dict(type='GELU'),
                 drop=0.):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden_channels, 1)
        self.act = build_activation_layer(act_cfg)
        self.fc2 = nn.Conv2d(hidden_channels, channels, 1)
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()

    def forward(self, x):
        x = self.drop(self.act(self.fc1(x)))
        return self.drop(self.fc2(x))


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
