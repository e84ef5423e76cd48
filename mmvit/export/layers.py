"""Size-independent replacements installed before tracing.

Eager layers that branch on the input size (CMT's padding and position-bias
resize, EfficientViT's choice between one window and a padded grid of
windows) are replaced by :func:`prepare_for_export` with modules that
compute the same for every size without branching, so that one traced
graph (ONNX, ``torch.export``) serves every input size. The replacements
share the parameters of the layers they replace.
"""
import torch
import torch.nn.functional as F
from torch import nn

from mmvit.models.backbones.cmt import (PadToMultiple,
                                        ResizableRelativePositionBias)
from mmvit.models.backbones.efficientvit import LocalWindowAttention


class ModuleRules:
    """``rule(module) -> module`` by exact module type (subclasses are not
    matched)."""

    def __init__(self):
        self._rules = {}

    def register(self, *types):
        """A decorator registering a rule for these types."""

        def register(rule):
            for cls in types:
                self._rules[cls] = rule
            return rule

        return register

    def apply_below(self, module):
        """Replace, top-down and in place, every module below ``module``
        by what its type's rule returns; the walk goes on inside each
        result."""
        for name, child in list(module.named_children()):
            rule = self._rules.get(type(child))
            new = child if rule is None else rule(child)
            if new is not child:
                setattr(module, name, new)
            self.apply_below(new)


def swap_class(module, cls):
    """A module of class ``cls`` holding ``module``'s parameters, buffers,
    children and attributes (a subclass that only changes the forward)."""
    new = cls.__new__(cls)
    new.__dict__.update(module.__dict__)
    return new


_RULES = ModuleRules()
export_rule = _RULES.register


def prepare_for_export(model: nn.Module) -> nn.Module:
    """Replace, in place, every layer below ``model`` that has an export
    rule; returns ``model``. Eval outputs are unchanged up to float
    rounding."""
    _RULES.apply_below(model)
    return model


class PadForPatches(nn.Module):
    """Pads ``patch - 1`` on the right and bottom whatever the size: the
    ``patch``-strided convolution after it reads the pixels (and gives the
    outputs) of :class:`~mmvit.models.backbones.cmt.PadToMultiple`."""

    def __init__(self, patch):
        super().__init__()
        self.patch = patch

    def forward(self, x):
        return F.pad(x, (0, self.patch - 1, 0, self.patch - 1))


def _cubic_weights(size, out_size, like):
    """(out_size, size) weights of PyTorch's bicubic resize along one axis
    (``align_corners=False``, A = -0.75, edge taps clamped): row ``i``
    holds the four cubic coefficients of output ``i`` at the input
    positions they read. Built from the sizes with tensor operations, so a
    traced graph keeps them dynamic."""
    a = -0.75
    index = torch.arange(out_size, device=like.device).to(like.dtype)
    source = (index + 0.5) * (size / out_size) - 0.5
    floor = source.floor()
    t = source - floor
    near = ((a + 2) * t - (a + 3)) * t * t + 1  # |offset| in [0, 1]
    far = ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a
    u = 1 - t
    near2 = ((a + 2) * u - (a + 3)) * u * u + 1
    far2 = ((a * (u + 1) - 5 * a) * (u + 1) + 8 * a) * (u + 1) - 4 * a
    positions = torch.arange(size, device=like.device)
    weights = 0
    for offset, coeff in zip((-1, 0, 1, 2), (far, near, near2, far2)):
        tap = (floor.long() + offset).clamp(0, size - 1)
        weights = weights + coeff[:, None] * (
            positions[None, :] == tap[:, None]).to(like.dtype)
    return weights


class MatrixResizedPositionBias(ResizableRelativePositionBias):
    """The position bias resized at every size, the training grid included
    (an exact identity there), as products with bicubic weight matrices
    built from the sizes: onnxruntime's cubic ``Resize`` of these tables
    took longer than the rest of the network. No table is kept."""

    def forward(self, q_size, k_size):
        heads, (hq, wq), (hk, wk) = self.num_heads, self.q_size, self.k_size
        table = self.table
        rows_q = _cubic_weights(hq, q_size[0], table)
        cols_q = _cubic_weights(wq, q_size[1], table)
        rows_k = _cubic_weights(hk, k_size[0], table)
        cols_k = _cubic_weights(wk, k_size[1], table)
        # query grid: (heads, hq, wq, Nk0) -> (heads, Hq, Wq, Nk0)
        out = rows_q @ table.reshape(heads, hq, wq * hk * wk)
        out = out.reshape(heads, -1, wq, hk * wk).transpose(2, 3)
        out = (out @ cols_q.transpose(0, 1)).transpose(2, 3)
        # key grid: (heads, Nq, hk, wk) -> (heads, Nq, Hk, Wk)
        out = out.reshape(heads, -1, hk, wk)
        out = rows_k @ out @ cols_k.transpose(0, 1)
        return out.reshape(heads, out.shape[1], -1)


@export_rule(PadToMultiple)
def _pad(module):
    return PadForPatches(module.patch)


@export_rule(ResizableRelativePositionBias)
def _bias(module):
    return swap_class(module, MatrixResizedPositionBias)


class PaddedWindowAttention(nn.Module):
    """EfficientViT's window attention, always on zero-padded whole windows.

    A map no larger than one window, which eager mode attends as a whole, is
    the top-left corner of a single padded window here: masking the padding
    out of the keys (``-inf`` logits) and out of the query convolution's
    input reproduces the eager result (its tokens' offsets are the
    window's). Shares the CGA layers of the module it replaces.
    """

    def __init__(self, window_attention):
        super().__init__()
        self.attn = window_attention.attn
        self.window_size = win = window_attention.window_size
        grid = torch.arange(win)
        dy = (grid[:, None, None, None] - grid[None, None, :, None]).abs()
        dx = (grid[None, :, None, None] - grid[None, None, None, :]).abs()
        index = (dy * win + dx).reshape(win * win, win * win)
        self.register_buffer('index', index, persistent=False)

    def forward(self, x):
        batch, channels, height, width = x.shape
        win = self.window_size
        rows, cols = (height - 1) // win + 1, (width - 1) // win + 1
        x = F.pad(x, (0, cols * win - width, 0, rows * win - height))
        x = x.reshape(batch, channels, rows, win, cols, win).permute(
            0, 2, 4, 1, 3, 5).contiguous().reshape(batch * rows * cols,
                                                   channels, win, win)
        # tensors, not Python bools, so that the size stays symbolic
        grid = torch.arange(win, device=x.device)
        limit = torch.full((), win, device=x.device)
        large = (limit < height) | (limit < width)
        valid = ((grid < height) | large)[:, None] & \
            ((grid < width) | large)[None, :]
        bias = self.attn.attention_biases[:, self.index].masked_fill(
            ~valid.flatten(), float('-inf'))
        x = self.attn(x, bias, valid.to(x.dtype))
        x = x.reshape(batch, rows, cols, channels, win, win).permute(
            0, 3, 1, 4, 2, 5).contiguous().reshape(batch, channels,
                                                   rows * win, cols * win)
        return x[:, :, :height, :width]


@export_rule(LocalWindowAttention)
def _window(module):
    return PaddedWindowAttention(module)


def _bin_weights(size, bins, like):
    """(bins, size) averaging weights of adaptive pooling: row ``i`` is
    ``1 / len`` over ``[floor(i * size / bins), ceil((i + 1) * size /
    bins))``, as PyTorch's adaptive pools define their bins."""
    index = torch.arange(bins, device=like.device)
    start = torch.div(index * size, bins, rounding_mode='floor')
    end = torch.div((index + 1) * size + bins - 1, bins,
                    rounding_mode='floor')
    position = torch.arange(size, device=like.device)
    inside = (position[None] >= start[:, None]) & \
        (position[None] < end[:, None])
    return inside.to(like.dtype) / (end - start)[:, None].to(like.dtype)


class MatrixAdaptiveAvgPool2d(nn.AdaptiveAvgPool2d):
    """``AdaptiveAvgPool2d`` as two products with bin-averaging matrices
    built from the input's size: the same bins and averages for every size
    (ONNX has no adaptive pooling for sizes known only at run time, as in
    mmseg's pyramid pooling)."""

    def forward(self, x):
        out_h, out_w = (self.output_size, ) * 2 if isinstance(
            self.output_size, int) else self.output_size
        height, width = x.shape[-2:]
        out_h = height if out_h is None else out_h
        out_w = width if out_w is None else out_w
        rows = _bin_weights(height, out_h, x)
        cols = _bin_weights(width, out_w, x)
        return rows @ x @ cols.transpose(0, 1)


@export_rule(nn.AdaptiveAvgPool2d)
def _adaptive_pool(module):
    if module.output_size in (1, (1, 1)):
        return module  # a global average exports for every size
    return swap_class(module, MatrixAdaptiveAvgPool2d)


__all__ = ['prepare_for_export', 'export_rule', 'swap_class',
           'PadForPatches',
           'MatrixResizedPositionBias', 'PaddedWindowAttention',
           'MatrixAdaptiveAvgPool2d']
