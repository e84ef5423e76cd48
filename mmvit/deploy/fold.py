"""Folding BatchNorms into adjacent convolutions, and merging convolutions."""
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_eval



def foldable_norm(norm):
    """Whether ``norm`` is a BatchNorm with running statistics."""
    return isinstance(norm, _BatchNorm) and norm.track_running_stats \
        and norm.running_mean is not None


def has_foldable_norm(layer):
    """Whether the conv-norm(-act) ``layer`` has a BatchNorm right after its
    convolution (which :func:`fold_conv_norm` removes)."""
    names = list(layer._modules)
    return len(names) > 1 and names[1] == 'bn' and \
        isinstance(layer.bn, _BatchNorm)


def norm_left(layer):
    """Whether a norm stays in ``layer`` after folding (not a BatchNorm)."""
    return 'bn' in layer._modules and not foldable_norm(layer.bn)


@torch.no_grad()
def fold_conv_norm(layer):
    """Fold the BatchNorm following the conv of a :class:`ConvNormAct` into
    it (its eval-mode output), in place; a no-op without one."""
    if has_foldable_norm(layer):
        layer.conv = fuse_conv_bn_eval(layer.conv.eval(), layer.bn.eval())
        del layer.bn
    return layer


@torch.no_grad()
def fold_norm_into_next_conv(norm, conv):
    """A dense 1x1 convolution computing ``conv(norm(x))`` for an eval-mode
    BatchNorm ``norm``: ``W' = W * scale`` per input channel and
    ``b' = b + W @ shift``."""
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


@torch.no_grad()
def stack_convs(convs, groups, block_diagonal=False):
    """One convolution doing the work of ``convs`` (equal shapes, each from
    its own slice of the input channels to its own slice of the outputs):
    grouped, or dense with zero off-diagonal blocks."""
    first = convs[0]
    in_channels = first.in_channels * len(convs)
    out_channels = first.out_channels * len(convs)
    weight = torch.cat([c.weight for c in convs])
    if block_diagonal:
        dense = weight.new_zeros(out_channels, in_channels,
                                 *weight.shape[2:])
        cin, cout = weight.shape[1], first.out_channels
        for i in range(len(convs)):
            dense[i * cout:(i + 1) * cout, i * cin:(i + 1) * cin] = \
                weight[i * cout:(i + 1) * cout]
        weight, groups = dense, 1
    stacked = nn.Conv2d(in_channels, out_channels, first.kernel_size,
                        first.stride, first.padding, first.dilation,
                        groups=groups, bias=first.bias is not None).to(weight)
    stacked.weight.copy_(weight)
    if first.bias is not None:
        stacked.bias.copy_(torch.cat([c.bias for c in convs]))
    return stacked
