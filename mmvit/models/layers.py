"""Layers shared by several backbone families."""
from collections import OrderedDict

import torch
from mmcv.cnn import build_activation_layer, build_norm_layer
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_eval


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

    @property
    def fusable(self):
        names = list(self._modules)
        return (len(names) > 1 and names[1] == 'bn'
                and isinstance(self.bn, _BatchNorm))

    @torch.no_grad()
    def fuse(self):
        """Fold the BatchNorm that follows the conv into it, in place.

        Uses the BatchNorm's running statistics, so the result equals the
        eval-mode output. A no-op where there is no such BatchNorm (no norm,
        another norm, or the activation first).
        """
        if self.fusable:
            self.conv = fuse_conv_bn_eval(self.conv.eval(), self.bn.eval())
            del self.bn
        return self


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


def is_exporting():
    """True while the model is exported (either ONNX exporter, TorchScript
    or dynamo, and ``torch.export``), False in eager mode and under a plain
    ``torch.jit.trace`` such as mmengine.analysis's FLOPs counter (a
    fraction of a microsecond per call).

    Layers whose eager code branches on the map size (or keeps per-size
    caches) take a size-independent path then, so that one exported graph
    is valid for every input size.
    """
    return torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting()


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


# -- fast CPU inference of deployed models ---------------------------------
def fast_cpu_inference(x):
    """Whether a deployed model may run ``x`` through its fast CPU path:
    oneDNN's fused convolutions (``torch.ops.mkldnn._convolution_pointwise``,
    the kernels torch.compile uses on CPU) in the channels-last layout.
    True for float32 CPU tensors in eager inference (no autograd, autocast,
    tracing, scripting, compiling or export), with PyTorch's oneDNN backend
    available and enabled."""
    return (_ONEDNN_POINTWISE is not None and x.device.type == 'cpu'
            and x.dtype == torch.float32 and not torch.is_grad_enabled()
            and torch.backends.mkldnn.is_available()
            and torch.backends.mkldnn.enabled
            and not torch.is_autocast_enabled('cpu')
            and not torch.jit.is_tracing() and not torch.jit.is_scripting()
            and not torch.compiler.is_compiling() and not is_exporting())


def _find_onednn_pointwise():
    try:
        return torch.ops.mkldnn._convolution_pointwise
    except (AttributeError, RuntimeError):
        return None


_ONEDNN_POINTWISE = _find_onednn_pointwise()


def _post_op(act):
    """oneDNN's name and algorithm for the activation module ``act``, or
    None where it has none (the activation then runs on its own)."""
    if act is None:
        return 'none', None
    if type(act) is nn.ReLU:
        return 'relu', None
    if type(act) is nn.GELU:
        return 'gelu', act.approximate
    if type(act) is nn.Sigmoid:
        return 'sigmoid', None
    return None


def fused_conv(x, conv, act=None, other=None, binary=None, fused=False):
    """``act(conv(x))`` or ``conv(x) <binary> other``, with ``binary``
    ``'add'`` or ``'mul'`` and ``act`` an activation module or None.

    With ``fused`` (see :func:`fast_cpu_inference`; no autograd) the
    activation, or the binary operation of a dense convolution, runs as a
    post-op of one oneDNN convolution (the same maths in float32), and the
    binary operation after a grouped convolution in place on its output.
    """
    assert act is None or binary is None
    post = _post_op(act) if fused and conv.padding_mode == 'zeros' \
        and isinstance(conv.padding, tuple) else None
    if post is None:
        y = conv(x)
        if binary is not None:
            y = y + other if binary == 'add' else y * other
        return y if act is None else act(y)
    args = (conv.weight, conv.bias, conv.padding, conv.stride,
            conv.dilation, conv.groups)
    if binary is None or conv.groups > 1:
        # oneDNN fuses binary post-ops of dense convolutions only
        y = _ONEDNN_POINTWISE(x, *args, post[0], [], post[1])
        if binary is not None:
            y = y.add_(other) if binary == 'add' else y.mul_(other)
        return y
    return _ONEDNN_POINTWISE.binary(x, other, *args, binary, None, None,
                                    [], None)


def pointwise_nhwc(x, conv, relu=False):
    """The 1x1 convolution ``conv`` (no groups) of a channels-last
    ``(B, H, W, C)`` tensor, as one matrix product (BLAS; faster than a
    convolution kernel on the small maps and windows of attention), then
    ReLU in place if ``relu``."""
    y = nn.functional.linear(x, conv.weight.flatten(1), conv.bias)
    return y.relu_() if relu else y


def conv_nhwc(x, conv, act=None):
    """``act(conv(x))`` for a channels-last ``(B, H, W, C)`` tensor: the
    convolution runs on its channels-last NCHW view (oneDNN's native
    layout, no reorder), the activation as its post-op where oneDNN has
    it (:func:`fused_conv`). Returns a ``(B, H', W', C')`` tensor."""
    return fused_conv(x.permute(0, 3, 1, 2), conv, act,
                      fused=True).permute(0, 2, 3, 1)


# -- folding norms for inference --------------------------------------------
def fuse_conv_norms(module):
    """Fold the BatchNorm of every conv-norm(-act) layer inside ``module``
    into its convolution (:meth:`ConvNormAct.fuse`; a no-op for layers
    without one), in place."""
    for layer in list(module.modules()):
        if isinstance(layer, ConvNormAct):
            layer.fuse()


def foldable_norm(norm):
    """Whether ``norm`` is a BatchNorm with running statistics, which an
    adjacent convolution can absorb for inference."""
    return isinstance(norm, _BatchNorm) and norm.track_running_stats \
        and norm.running_mean is not None


@torch.no_grad()
def fold_norm_into_next_conv(norm, conv):
    """A 1x1 convolution computing ``conv(norm(x))`` for an eval-mode
    BatchNorm ``norm``: ``W' = W * scale`` per input channel and
    ``b' = b + W @ shift`` (exact: a 1x1 convolution without padding sees
    no zero padding the norm would have shifted)."""
    assert foldable_norm(norm)
    assert conv.kernel_size == (1, 1) and conv.padding == (0, 0) \
        and conv.groups == 1, 'only a dense 1x1 convolution'
    scale = norm.running_var.add(norm.eps).rsqrt()
    if norm.affine:
        scale = scale * norm.weight
    shift = -norm.running_mean * scale
    if norm.affine:
        shift = shift + norm.bias
    weight = conv.weight
    bias = weight.flatten(1) @ shift
    if conv.bias is not None:
        bias = bias + conv.bias
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, 1,
                      stride=conv.stride, bias=True).to(weight)
    fused.weight.copy_(weight * scale.view(1, -1, 1, 1))
    fused.bias.copy_(bias)
    return fused
