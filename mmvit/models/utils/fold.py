"""Exact reparameterisations: BatchNorm and LayerNorm affines folded into
the convolutions and linear layers next to them (eval-mode maths; each
function returns a new layer and leaves its inputs alone)."""
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_eval


def foldable_norm(norm):
    """Whether ``norm`` is a BatchNorm with running statistics (an affine
    map per channel in eval mode)."""
    return isinstance(norm, _BatchNorm) and norm.running_mean is not None


def batch_norm_affine(norm):
    """``(scale, shift)`` per channel with ``norm(x) = x * scale + shift``
    for the eval-mode BatchNorm ``norm``."""
    scale = norm.running_var.add(norm.eps).rsqrt()
    if norm.affine:
        scale = scale * norm.weight
    shift = -norm.running_mean * scale
    if norm.affine:
        shift = shift + norm.bias
    return scale, shift


@torch.no_grad()
def fold_conv_norm(conv, norm):
    """A convolution with bias computing ``norm(conv(x))``."""
    return fuse_conv_bn_eval(conv.eval(), norm.eval())


@torch.no_grad()
def add_identity(conv):
    """``conv`` (depthwise, odd kernel, stride 1, zero padding of half the
    kernel) changed in place to compute ``x + conv(x)``: 1 added to the
    centre of each kernel, the tap that reads the position itself."""
    kh, kw = conv.kernel_size
    if conv.groups != conv.in_channels or conv.in_channels != \
            conv.out_channels or conv.stride != (1, 1) or \
            conv.padding != (kh // 2, kw // 2) or not kh % 2 or not kw % 2:
        raise ValueError('only a same-size depthwise convolution takes the '
                         'identity into its kernel')
    conv.weight[:, 0, kh // 2, kw // 2] += 1
    return conv


@torch.no_grad()
def fold_norm_into_conv(norm, conv):
    """A dense 1x1 convolution with bias computing ``conv(norm(x))`` for the
    eval-mode BatchNorm ``norm``: ``W' = W * scale`` per input channel,
    ``b' = b + W @ shift``."""
    if conv.kernel_size != (1, 1) or conv.groups != 1:
        raise ValueError('only a dense 1x1 convolution takes the norm before '
                         'it (a padded or grouped one reads zeros, not '
                         'normalised zeros)')
    scale, shift = batch_norm_affine(norm)
    bias = conv.weight.flatten(1) @ shift
    if conv.bias is not None:
        bias = bias + conv.bias
    folded = nn.Conv2d(conv.in_channels, conv.out_channels, 1,
                       stride=conv.stride).to(conv.weight)
    folded.weight.copy_(conv.weight * scale.view(1, -1, 1, 1))
    folded.bias.copy_(bias)
    return folded


@torch.no_grad()
def fold_norm_into_linear(norm, linear):
    """A linear layer computing ``linear(norm(x))`` for the eval-mode
    BatchNorm1d ``norm``."""
    scale, shift = batch_norm_affine(norm)
    folded = nn.Linear(linear.in_features, linear.out_features).to(
        linear.weight)
    bias = linear.weight @ shift
    if linear.bias is not None:
        bias = bias + linear.bias
    folded.weight.copy_(linear.weight * scale)
    folded.bias.copy_(bias)
    return folded


@torch.no_grad()
def average_linears(first, second):
    """One linear layer computing ``(first(x) + second(x)) / 2``."""
    merged = nn.Linear(first.in_features, first.out_features).to(
        first.weight)
    merged.weight.copy_((first.weight + second.weight) / 2)
    merged.bias.copy_((first.bias + second.bias) / 2)
    return merged


@torch.no_grad()
def fold_layer_norm_into_linear(norm, linear):
    """``(norm', linear')`` with ``linear'(norm'(x)) = linear(norm(x))``:
    the LayerNorm's affine moves into the linear layer (``W' = W
    diag(gamma)``, ``b' = W beta + b``) and ``norm'`` keeps only its
    eps."""
    plain = nn.LayerNorm(norm.normalized_shape, eps=norm.eps,
                         elementwise_affine=False)
    folded = nn.Linear(linear.in_features, linear.out_features).to(
        linear.weight)
    bias = linear.bias if linear.bias is not None else 0.
    folded.weight.copy_(linear.weight * norm.weight)
    folded.bias.copy_(linear.weight @ norm.bias + bias)
    return plain, folded
