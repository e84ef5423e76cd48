"""CPU kernels of deployed models and the one rule for when they run.

A deployed module calls these helpers with ``fused=fast_cpu_inference(x)``:
with it, activations and binary operations run as post-ops of oneDNN
convolutions (``torch.ops.mkldnn._convolution_pointwise``, the kernels
torch.compile uses on CPU); without it, the same maths runs as plain
PyTorch operations, on any device, with autograd, while tracing and
exporting. While :func:`capturing_graph` is on (:mod:`mmvit.deploy.graph`
tracing a deployed backbone for CPU inference), the fast path is traced as
well: the oneDNN calls go through small TorchScript functions the tracer
can record.
"""
import contextlib
import functools
import threading
from typing import List, Optional

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

_STATE = threading.local()


@contextlib.contextmanager
def capturing_graph():
    """Within it, :func:`fast_cpu_inference` also holds under
    ``torch.jit.trace`` (a graph traced for CPU inference keeps the fused
    kernels)."""
    previous = getattr(_STATE, 'capturing', False)
    _STATE.capturing = True
    try:
        yield
    finally:
        _STATE.capturing = previous


def is_capturing_graph():
    """True within :func:`capturing_graph`."""
    return getattr(_STATE, 'capturing', False)


def _tracing():
    """True under ``torch.jit.trace`` unless :func:`capturing_graph` is on."""
    return torch.jit.is_tracing() and not is_capturing_graph()


def is_exporting():
    """True while an ONNX exporter or ``torch.export`` traces the model
    (not under a plain ``torch.jit.trace`` such as mmengine's FLOP counter)."""
    return torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting()


def _find_onednn_op(name):
    try:
        return getattr(torch.ops.mkldnn, name)
    except (AttributeError, RuntimeError):
        return None


_ONEDNN_POINTWISE = _find_onednn_op('_convolution_pointwise')
_ONEDNN_LINEAR = _find_onednn_op('_linear_pointwise')


def fast_cpu_inference(x):
    """Whether ``x`` may take the fused CPU kernels: a float32 CPU tensor in
    eager inference (no autograd, autocast, tracing, scripting, compiling
    or export) with PyTorch's oneDNN backend available and enabled."""
    return (_ONEDNN_POINTWISE is not None and x.device.type == 'cpu'
            and x.dtype == torch.float32 and not torch.is_grad_enabled()
            and torch.backends.mkldnn.is_available()
            and torch.backends.mkldnn.enabled
            and not torch.is_autocast_enabled('cpu')
            and not _tracing() and not torch.jit.is_scripting()
            and not torch.compiler.is_compiling() and not is_exporting())


def _unary_script(x: torch.Tensor, weight: torch.Tensor,
                  bias: Optional[torch.Tensor], padding: List[int],
                  stride: List[int], dilation: List[int], groups: int,
                  attr: str, algorithm: Optional[str]) -> torch.Tensor:
    """``_convolution_pointwise`` with no scalars, in a form the tracer
    records (it cannot trace the op's ``Scalar?[]`` argument itself)."""
    return torch.ops.mkldnn._convolution_pointwise(
        x, weight, bias, padding, stride, dilation, groups, attr,
        torch.jit.annotate(List[Optional[number]], []),  # noqa: F821
        algorithm)


def _binary_script(x: torch.Tensor, other: torch.Tensor,
                   weight: torch.Tensor, bias: Optional[torch.Tensor],
                   padding: List[int], stride: List[int],
                   dilation: List[int], groups: int,
                   attr: str) -> torch.Tensor:
    """``_convolution_pointwise.binary`` with no unary post-op, in a form
    the tracer records."""
    return torch.ops.mkldnn._convolution_pointwise(
        x, other, weight, bias, padding, stride, dilation, groups, attr,
        None, None,
        torch.jit.annotate(List[Optional[number]], []),  # noqa: F821
        None)


def _linear_script(x: torch.Tensor, weight: torch.Tensor,
                   bias: Optional[torch.Tensor], attr: str,
                   algorithm: Optional[str]) -> torch.Tensor:
    """``_linear_pointwise`` with no scalars, in a form the tracer
    records."""
    return torch.ops.mkldnn._linear_pointwise(
        x, weight, bias, attr,
        torch.jit.annotate(List[Optional[number]], []),  # noqa: F821
        algorithm)


@functools.lru_cache(maxsize=None)
def _traceable(function):
    """The TorchScript form of ``function`` (``_unary_script``,
    ``_binary_script`` or ``_linear_script``), compiled on first use."""
    return torch.jit.script(function)


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
    """``act(conv(x))`` or ``conv(x) <binary> other`` (``binary`` is
    ``'add'`` or ``'mul'``). With ``fused``, the activation, or the binary
    operation of a dense convolution, is a post-op of one oneDNN
    convolution (of a dense 1x1 convolution of channels-last maps: one
    oneDNN product of their ``(B*H*W, C)`` rows with the same post-ops,
    faster on small maps); after a grouped convolution the binary operation
    runs in place on its output."""
    assert act is None or binary is None
    post = _post_op(act) if fused and conv.padding_mode == 'zeros' \
        and isinstance(conv.padding, tuple) else None
    if post is None:
        y = conv(x)
        if binary is not None:
            y = y + other if binary == 'add' else y * other
        return y if act is None else act(y)
    tracing = torch.jit.is_tracing()
    if _pointwise_rows(conv, x, other):
        return _fused_linear(x, conv, post, other, binary, tracing)
    args = (conv.weight, conv.bias, conv.padding, conv.stride,
            conv.dilation, conv.groups)
    if binary is None or conv.groups > 1:
        # oneDNN fuses binary post-ops of dense convolutions only
        if tracing:
            y = _traceable(_unary_script)(x, *_lists(args), post[0],
                                           post[1])
        else:
            y = _ONEDNN_POINTWISE(x, *args, post[0], [], post[1])
        if binary is not None:
            y = y.add_(other) if binary == 'add' else y.mul_(other)
        return y
    if tracing:
        return _traceable(_binary_script)(x, other, *_lists(args), binary)
    return _ONEDNN_POINTWISE.binary(x, other, *args, binary, None, None,
                                    [], None)


def norm_in_place(x, norm, fused=False):
    """``norm(x)`` for an eval-mode BatchNorm ``norm``. With ``fused``, one
    pass that overwrites ``x`` (a temporary of the caller's):
    ``x * s + t`` with ``s = gamma / sqrt(var + eps)`` and
    ``t = beta - mean * s`` per channel (``torch.addcmul(..., out=x)``).
    Other norms, and BatchNorms in training mode, run as they are."""
    if not (fused and isinstance(norm, _BatchNorm) and not norm.training
            and norm.running_var is not None):
        return norm(x)
    scale = torch.rsqrt(norm.running_var + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight
    shift = -norm.running_mean * scale
    if norm.bias is not None:
        shift = shift + norm.bias
    view = (1, -1) + (1, ) * (x.dim() - 2)
    return torch.addcmul(shift.view(view), x, scale.view(view), out=x)


def _rows(x):
    """The ``(B*H*W, C)`` matrix of a channels-last NCHW map (a view)."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def _pointwise_rows(conv, x, other):
    """Whether ``conv`` of ``x`` (and the binary operand ``other``) is a
    product of channels-last rows: a dense, unpadded, stride-1 1x1
    convolution of 4-D channels-last maps."""
    cl = torch.channels_last
    return (_ONEDNN_LINEAR is not None and conv.groups == 1
            and conv.kernel_size == (1, 1) and conv.stride == (1, 1)
            and conv.padding == (0, 0) and x.dim() == 4
            and x.is_contiguous(memory_format=cl)
            and (other is None or (
                tuple(other.shape) == (x.shape[0], conv.out_channels,
                                       *x.shape[2:])
                and other.is_contiguous(memory_format=cl))))


def _fused_linear(x, conv, post, other, binary, tracing):
    """:func:`fused_conv` of a dense 1x1 ``conv`` as a oneDNN matrix
    product of the channels-last rows of ``x``, returning a channels-last
    map."""
    batch, _, height, width = x.shape
    weight = conv.weight.flatten(1)
    if binary is not None:
        y = _ONEDNN_LINEAR.binary(_rows(x), _rows(other), weight, conv.bias,
                                  binary)
    elif tracing:
        y = _traceable(_linear_script)(_rows(x), weight, conv.bias,
                                       post[0], post[1])
    else:
        y = _ONEDNN_LINEAR(_rows(x), weight, conv.bias, post[0], [], post[1])
    return y.view(batch, height, width, -1).permute(0, 3, 1, 2)


def _lists(args):
    """The convolution arguments with padding, stride and dilation as lists
    (TorchScript's ``List[int]``)."""
    weight, bias, padding, stride, dilation, groups = args
    return (weight, bias, list(padding), list(stride), list(dilation),
            groups)


def pointwise_nhwc(x, conv, relu=False):
    """The dense 1x1 convolution ``conv`` of a ``(..., C)`` channels-last
    tensor as one matrix product, then ReLU in place if ``relu``."""
    y = nn.functional.linear(x, conv.weight.flatten(1), conv.bias)
    return y.relu_() if relu else y


def conv_nhwc(x, conv, act=None, fused=False):
    """``act(conv(x))`` of a ``(B, H, W, C)`` tensor: the convolution runs
    on its channels-last NCHW view (:func:`fused_conv`); returns
    ``(B, H', W', C')``."""
    return fused_conv(x.permute(0, 3, 1, 2), conv, act,
                      fused=fused).permute(0, 2, 3, 1)
