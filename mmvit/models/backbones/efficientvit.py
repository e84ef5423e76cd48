"""EfficientViT (Microsoft, CVPR 2023): cascaded group attention.

A stride-16 convolutional patch embedding, then three stages at strides 16,
32 and 64. Every layer is a convolution followed by BatchNorm (fusable for
inference, see :meth:`ConvNormAct.fuse` and :func:`mmvit.deploy
.switch_to_deploy`). A block is a "sandwich": depthwise conv, FFN, local
window attention, depthwise conv, FFN, each residual. The attention is
cascaded group attention (CGA): head ``i`` sees its own channel chunk plus the
previous head's output, its query passes a depthwise conv with that head's
kernel, and a learned bias per window offset ``(|dy|, |dx|)`` is added to its
logits. Stages 2 and 3 start with a downsampling unit (residual dwconv + FFN,
inverted-residual patch merging with squeeze-excite, residual dwconv + FFN).

Any input size works: maps larger than the window (7) in either direction
are zero-padded on the right and bottom to multiples of the window and
attended per window; smaller maps attend as a whole with the offsets of
their own size. When the model is traced for export
(:func:`mmvit.models.layers.is_exporting`), the same rule is computed without
branching on the size (see :meth:`LocalWindowAttention.forward_graph`), so one
ONNX graph serves every input size.

Official ImageNet checkpoints (``model`` key, ``patch_embed.*``,
``blocks{1,2,3}.*``) load unchanged through ``init_cfg=dict(type=
'Pretrained', checkpoint=...)``. At 224 the classification network's third
stage is a 4x4 map, so its bias tables hold 4x4 offsets where ours hold the
window's 7x7: the learned 4x4 offsets are copied exactly and every offset the
model never saw takes the value of the nearest learned one (coordinates
clamped to 0..3), i.e. constant extrapolation along each axis. With these
weights, our outputs at 224 equal the official network's.
"""
import itertools
import re

import torch
from mmcv.cnn.bricks import DropPath
from torch import nn

from mmvit.registry import MODELS
from ..layers import (ConvNormAct, DerivedTensorCache, conv_nhwc,
                      drop_path_rates, fast_cpu_inference, fuse_conv_norms,
                      is_exporting, pointwise_nhwc)
from ..utils import MMViTBackbone, parse_arch


_RELU = nn.ReLU()  # the post-op of fused convolutions (see conv_nhwc)


def conv_bn(in_channels, out_channels, kernel_size=1, stride=1, groups=1,
            bn_weight_init=1.):
    """Conv (no bias) + BN, the BN weight starting at ``bn_weight_init``."""
    layer = ConvNormAct(in_channels, out_channels, kernel_size, stride,
                        kernel_size // 2, groups=groups, bias=False)
    nn.init.constant_(layer.bn.weight, bn_weight_init)
    nn.init.constant_(layer.bn.bias, 0)
    return layer


class FFN(nn.Module):
    """1x1 conv-BN (C -> 2C), ReLU, 1x1 conv-BN (2C -> C, BN weight 0)."""

    def __init__(self, channels, hidden):
        super().__init__()
        self.pw1 = conv_bn(channels, hidden)
        self.act = nn.ReLU()
        self.pw2 = conv_bn(hidden, channels, bn_weight_init=0.)

    def forward(self, x):
        return self.pw2(self.act(self.pw1(x)))

    def forward_nhwc(self, x):
        """``x + FFN(x)`` of a deployed layer, channels-last."""
        y = pointwise_nhwc(pointwise_nhwc(x, self.pw1.conv, relu=True),
                           self.pw2.conv)
        return y.add_(x)


class SqueezeExcite(nn.Module):
    """x * sigmoid(expand(ReLU(reduce(mean(x))))), 1x1 convs with bias."""

    def __init__(self, channels, ratio=0.25):
        super().__init__()
        hidden = int(round(channels * ratio))
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(hidden, channels, 1)

    def forward(self, x):
        scale = self.expand(self.act(self.reduce(x.mean((2, 3),
                                                        keepdim=True))))
        return x * torch.sigmoid(scale)

    def forward_nhwc(self, x):
        scale = x.mean((1, 2))
        scale = pointwise_nhwc(scale, self.reduce, relu=True)
        scale = pointwise_nhwc(scale, self.expand).sigmoid_()
        return x * scale[:, None, None, :]


class CascadedGroupAttention(nn.Module):
    """CGA over one map (a window or a map no larger than a window).

    Args:
        channels (int): input and output channels.
        num_heads (int): heads; each gets ``channels / num_heads`` channels.
        kernels (Sequence[int]): query depthwise kernel of each head.
        key_dim (int): query/key channels per head.
        window_size (int): the largest map attended as a whole; the bias
            table holds its ``window_size**2`` offsets.
    """

    def __init__(self, channels, num_heads, kernels, key_dim=16,
                 window_size=7):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f'EfficientViT: channels {channels} are not '
                             f'divisible by {num_heads} heads')
        if len(kernels) < num_heads:
            raise ValueError(f'EfficientViT: {num_heads} heads need as many '
                             f'query kernels, got {list(kernels)}')
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = channels // num_heads
        self.scale = key_dim**-0.5
        self.window_size = window_size
        self.qkvs = nn.ModuleList([
            conv_bn(channels // num_heads, 2 * key_dim + self.value_dim)
            for _ in range(num_heads)
        ])
        self.dws = nn.ModuleList([
            conv_bn(key_dim, key_dim, kernels[i], groups=key_dim)
            for i in range(num_heads)
        ])
        self.proj = conv_bn(self.value_dim * num_heads, channels,
                            bn_weight_init=0.)
        self.attention_biases = nn.Parameter(
            torch.zeros(num_heads, window_size * window_size))
        self._bias_cache = DerivedTensorCache(capacity=4)
        self._index_cache = {}

    def offset_index(self, size):
        """(N, N) index of |dy| * window + |dx| for an H x W grid; built
        once per grid size and device (it depends on nothing learned)."""
        device = self.attention_biases.device
        key = (tuple(size), device)
        index = self._index_cache.get(key)
        if index is None:
            points = torch.tensor(list(itertools.product(range(size[0]),
                                                         range(size[1]))),
                                  device=device)
            offsets = (points[:, None, :] - points[None, :, :]).abs()
            index = offsets[..., 0] * self.window_size + offsets[..., 1]
            if not is_exporting():  # a traced tensor must not be kept
                self._index_cache[key] = index
        return index

    def bias(self, size):
        """(heads, N, N) bias of an H x W map; cached outside training."""
        size = tuple(size)

        def gather():
            return self.attention_biases[:, self.offset_index(size)]

        if self.training:
            return gather()
        return self._bias_cache.get(self.attention_biases, size, gather)

    def forward(self, x, valid=None):
        """CGA over ``x``.

        ``valid`` (export only, see ``LocalWindowAttention.forward_graph``):
        an ``(H, W)`` bool mask of the real tokens of a padded window; the
        others are not attended to and read as zeros by the query conv.
        """
        batch, _, height, width = x.shape
        if valid is None:
            bias = self.bias((height, width))
        else:  # the full window, uncached; -inf for padding keys
            bias = self.attention_biases[:, self.offset_index(
                (self.window_size, ) * 2)].masked_fill(
                    ~valid.flatten(), float('-inf'))
        chunks = x.chunk(self.num_heads, dim=1)
        outs = []
        feat = chunks[0]
        for i, (qkv, dw) in enumerate(zip(self.qkvs, self.dws)):
            if i > 0:  # the cascade: add the previous head's output
                feat = feat + chunks[i]
            q, k, v = qkv(feat).view(batch, -1, height, width).split(
                [self.key_dim, self.key_dim, self.value_dim], dim=1)
            if valid is not None:
                q = q * valid.to(q.dtype)
            q, k, v = dw(q).flatten(2), k.flatten(2), v.flatten(2)
            attn = (q.transpose(-2, -1) @ k) * self.scale + bias[i]
            attn = attn.softmax(dim=-1)
            feat = (v @ attn.transpose(-2, -1)).view(batch, self.value_dim,
                                                     height, width)
            outs.append(feat)
        return self.proj(torch.relu(torch.cat(outs, 1)))

    def forward_nhwc(self, x):
        """:meth:`forward` of a deployed layer, channels-last ``(B, H, W, C)``:
        the 1x1 projections as matrix products, the scaled logits and the
        offset bias in one ``baddbmm`` (the same maths in another
        order)."""
        batch, height, width, _ = x.shape
        tokens = height * width
        bias = self.bias((height, width))
        chunks = x.chunk(self.num_heads, dim=-1)
        outs = []
        feat = chunks[0]
        for i, (qkv, dw) in enumerate(zip(self.qkvs, self.dws)):
            if i > 0:
                feat = feat + chunks[i]
            q, k, v = pointwise_nhwc(feat, qkv.conv).split(
                [self.key_dim, self.key_dim, self.value_dim], dim=-1)
            q = conv_nhwc(q, dw.conv).reshape(batch, tokens, -1)
            attn = torch.baddbmm(bias[i], q,
                                 k.reshape(batch, tokens, -1).transpose(1, 2),
                                 alpha=self.scale).softmax(dim=-1)
            feat = torch.bmm(attn, v.reshape(batch, tokens, -1)).view(
                batch, height, width, -1)
            outs.append(feat)
        return pointwise_nhwc(torch.cat(outs, -1).relu_(), self.proj.conv)


class LocalWindowAttention(nn.Module):
    """CGA per ``window x window`` window (zero-padded), or on the whole map
    when it is no larger than a window."""

    def __init__(self, channels, num_heads, kernels, key_dim=16,
                 window_size=7):
        super().__init__()
        self.window_size = window_size
        self.attn = CascadedGroupAttention(channels, num_heads, kernels,
                                           key_dim, window_size)

    def _per_window(self, x, attend):
        """``attend`` over the channels-last ``(B, H, W, C)`` map ``x``: on
        the whole map when it is no larger than a window, else on each
        window of the map zero-padded on the right and bottom to whole
        windows (``attend`` maps ``(N, win, win, C)`` to the same shape)."""
        batch, height, width, channels = x.shape
        win = self.window_size
        if height <= win and width <= win:
            return attend(x)
        pad_b, pad_r = -height % win, -width % win
        if pad_b or pad_r:
            x = nn.functional.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        rows, cols = (height + pad_b) // win, (width + pad_r) // win
        x = x.view(batch, rows, win, cols, win, channels).transpose(
            2, 3).reshape(batch * rows * cols, win, win, channels)
        x = attend(x)
        x = x.view(batch, rows, cols, win, win, channels).transpose(
            2, 3).reshape(batch, rows * win, cols * win, channels)
        if pad_b or pad_r:
            x = x[:, :height, :width].contiguous()
        return x

    def forward(self, x):
        if is_exporting():
            return self.forward_graph(x)
        return self._per_window(
            x.permute(0, 2, 3, 1),
            lambda w: self.attn(w.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        ).permute(0, 3, 1, 2)

    def forward_nhwc(self, x):
        """:meth:`forward` of a deployed layer, channels-last
        ``(B, H, W, C)``."""
        return self._per_window(x, self.attn.forward_nhwc)

    def forward_graph(self, x):
        """``forward`` without branching on the map size, for export.

        Always pads to whole windows (a no-op for multiples of the window)
        and attends per window. A map no larger than one window, which
        ``forward`` attends as a whole, is then the top-left corner of a
        single padded window: masking the padding out of the keys and out
        of the query convolution's input reproduces that (the offsets of
        its tokens are those of the window). Equal to ``forward`` up to
        float rounding, for every size, in one graph.
        """
        batch, channels, height, width = x.shape
        win = self.window_size
        rows, cols = (height - 1) // win + 1, (width - 1) // win + 1
        x = nn.functional.pad(x, (0, cols * win - width, 0,
                                  rows * win - height))
        x = x.reshape(batch, channels, rows, win, cols, win).permute(
            0, 2, 4, 1, 3, 5).contiguous().reshape(batch * rows * cols,
                                                   channels, win, win)
        # tensors, not Python bools, so that the size stays symbolic
        grid = torch.arange(win, device=x.device)
        limit = torch.full((), win, device=x.device)
        large = (limit < height) | (limit < width)
        valid = ((grid < height) | large)[:, None] & \
            ((grid < width) | large)[None, :]
        x = self.attn(x, valid)
        x = x.reshape(batch, rows, cols, channels, win, win).permute(
            0, 3, 1, 4, 2, 5).contiguous().reshape(batch, channels,
                                                   rows * win, cols * win)
        return x[:, :, :height, :width]


class EfficientViTBlock(nn.Module):
    """x + dw0, x + ffn0, x + attention, x + dw1, x + ffn1."""

    def __init__(self, channels, num_heads, kernels, key_dim=16,
                 window_size=7, drop_path=0.):
        super().__init__()
        self.dw0 = conv_bn(channels, channels, 3, groups=channels,
                           bn_weight_init=0.)
        self.ffn0 = FFN(channels, 2 * channels)
        self.mixer = LocalWindowAttention(channels, num_heads, kernels,
                                          key_dim, window_size)
        self.dw1 = conv_bn(channels, channels, 3, groups=channels,
                           bn_weight_init=0.)
        self.ffn1 = FFN(channels, 2 * channels)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        for layer in (self.dw0, self.ffn0, self.mixer, self.dw1, self.ffn1):
            x = x + self.drop_path(layer(x))
        return x

    def forward_nhwc(self, x):
        """Eval-mode :meth:`forward` of a deployed block, channels-last."""
        x = conv_nhwc(x, self.dw0.conv).add_(x)
        x = self.ffn0.forward_nhwc(x)
        x = self.mixer.forward_nhwc(x).add_(x)
        x = conv_nhwc(x, self.dw1.conv).add_(x)
        return self.ffn1.forward_nhwc(x)


class ConvFFN(nn.Module):
    """x + dwconv3x3-BN(x), then x + FFN(x): around a patch merging."""

    def __init__(self, channels):
        super().__init__()
        self.dw = conv_bn(channels, channels, 3, groups=channels)
        self.ffn = FFN(channels, 2 * channels)

    def forward(self, x):
        x = x + self.dw(x)
        return x + self.ffn(x)

    def forward_nhwc(self, x):
        return self.ffn.forward_nhwc(conv_nhwc(x, self.dw.conv).add_(x))


class PatchMerging(nn.Module):
    """1x1 (C -> 4C), ReLU, stride-2 dw3x3, ReLU, SE, 1x1 (4C -> C')."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        hidden = 4 * in_channels
        self.conv1 = conv_bn(in_channels, hidden)
        self.conv2 = conv_bn(hidden, hidden, 3, stride=2, groups=hidden)
        self.se = SqueezeExcite(hidden, 0.25)
        self.conv3 = conv_bn(hidden, out_channels)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.conv3(self.se(x))

    def forward_nhwc(self, x):
        x = pointwise_nhwc(x, self.conv1.conv, relu=True)
        x = conv_nhwc(x, self.conv2.conv, _RELU)
        return pointwise_nhwc(self.se.forward_nhwc(x), self.conv3.conv)


class Downsample(nn.Sequential):
    """ConvFFN at the old width, patch merging, ConvFFN at the new width."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.pre = ConvFFN(in_channels)
        self.merge = PatchMerging(in_channels, out_channels)
        self.post = ConvFFN(out_channels)


class EfficientViTStage(nn.Module):

    def __init__(self, in_channels, channels, depth, num_heads, kernels,
                 key_dim, window_size, dpr, downsample):
        super().__init__()
        self.downsample = Downsample(in_channels,
                                     channels) if downsample else None
        self.blocks = nn.Sequential(*[
            EfficientViTBlock(channels, num_heads, kernels, key_dim,
                              window_size, dpr[j]) for j in range(depth)
        ])

    def forward(self, x):
        if self.downsample is not None:
            x = self.downsample(x)
        return self.blocks(x)

    def forward_nhwc(self, x):
        if self.downsample is not None:
            for unit in self.downsample:
                x = unit.forward_nhwc(x)
        for block in self.blocks:
            x = block.forward_nhwc(x)
        return x


@MODELS.register_module()
class EfficientViT(MMViTBackbone):
    """EfficientViT (cascaded group attention) for dense prediction.

    Args:
        arch (str | dict): ``'m0'`` ... ``'m5'`` or a dict with keys
            ``channels``, ``depths``, ``num_heads`` and ``kernels`` (the
            query depthwise kernel of each head, shared by the stages).
        in_channels (int): input channels. Defaults to 3.
        out_indices (Sequence[int]): stages to output (strides 16, 32, 64).
        frozen_stages (int): -1 freezes nothing, 0 the patch embedding, ``i``
            it and stages ``0..i-1``.
        norm_eval (bool): keep BatchNorm statistics frozen while training
            (the official downstream model always does). Defaults to True.
        key_dim (int): query/key channels per head. Defaults to 16.
        window_size (int): attention window. Defaults to 7.
        drop_path_rate (float): stochastic depth over the blocks' residual
            branches, rising linearly to this value. Defaults to 0.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=...)``.
    """
    arch_settings = {
        'm0': dict(channels=[64, 128, 192], depths=[1, 2, 3],
                   num_heads=[4, 4, 4], kernels=[5, 5, 5, 5]),
        'm1': dict(channels=[128, 144, 192], depths=[1, 2, 3],
                   num_heads=[2, 3, 3], kernels=[7, 5, 3, 3]),
        'm2': dict(channels=[128, 192, 224], depths=[1, 2, 3],
                   num_heads=[4, 3, 2], kernels=[7, 5, 3, 3]),
        'm3': dict(channels=[128, 240, 320], depths=[1, 2, 3],
                   num_heads=[4, 3, 4], kernels=[5, 5, 5, 5]),
        'm4': dict(channels=[128, 256, 384], depths=[1, 2, 3],
                   num_heads=[4, 4, 4], kernels=[7, 5, 3, 3]),
        'm5': dict(channels=[192, 288, 384], depths=[1, 3, 4],
                   num_heads=[3, 3, 4], kernels=[7, 5, 3, 3]),
    }

    def __init__(self,
                 arch='m4',
                 in_channels=3,
                 out_indices=(0, 1, 2),
                 frozen_stages=-1,
                 norm_eval=True,
                 key_dim=16,
                 window_size=7,
                 drop_path_rate=0.,
                 init_cfg=None):
        settings = parse_arch(arch, self.arch_settings, 'EfficientViT',
                              ('channels', 'num_heads'))
        channels, depths = settings['channels'], settings['depths']
        num_stages = len(depths)
        if channels[0] % 8:
            raise ValueError(f'EfficientViT: the first stage width '
                             f'{channels[0]} must be a multiple of 8')
        super().__init__(num_stages, out_indices, frozen_stages, norm_eval,
                         in_channels, init_cfg)
        self.arch = settings
        self.window_size = window_size
        self.channels = tuple(channels)
        self.out_channels = tuple(channels[i] for i in self.out_indices)
        self.out_strides = tuple(2**(i + 4) for i in self.out_indices)

        widths = [in_channels] + [channels[0] // 2**k for k in (3, 2, 1, 0)]
        stem = []
        for i in range(4):
            stem.append(conv_bn(widths[i], widths[i + 1], 3, stride=2))
            if i < 3:
                stem.append(nn.ReLU())
        self.stem = nn.Sequential(*stem)
        dprs = drop_path_rates(depths, drop_path_rate)
        self.stages = nn.ModuleList([
            EfficientViTStage(channels[max(i - 1, 0)], channels[i], depths[i],
                              settings['num_heads'][i], settings['kernels'],
                              key_dim, window_size, dprs[i], i > 0)
            for i in range(num_stages)
        ])
        self.deployed = False
        self._freeze_stages()

    def forward(self, x):
        """Stage outputs (see the class docstring). A deployed model runs
        a float32 CPU input in eager inference (see
        :func:`~mmvit.models.layers.fast_cpu_inference`) in the
        channels-last layout: 1x1 convolutions as matrix products, the
        others through oneDNN with their ReLU fused, residual sums in place
        and the attention logits' scale and bias in one ``baddbmm`` (the
        layers' ``forward_nhwc``). It returns contiguous NCHW maps.
        """
        if not (self.deployed and not self.training
                and fast_cpu_inference(x)):
            return super().forward(x)
        self.check_input(x)
        x = x.permute(0, 2, 3, 1).contiguous()
        convs = self.stem[::2]  # conv-BN layers, ReLU between them
        for i, layer in enumerate(convs):
            x = conv_nhwc(x, layer.conv, _RELU if i < len(convs) - 1 else None)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage.forward_nhwc(x)
            if i in self.out_indices:
                outs.append(x.permute(0, 3, 1, 2).contiguous())
        return tuple(outs)

    @torch.no_grad()
    def switch_to_deploy(self):
        """Prepare the model for inference, in place; returns it.

        Folds every BatchNorm into the convolution before it (in
        EfficientViT every BatchNorm follows a convolution) and puts the
        model in eval mode; on CPU the forward then takes the fast path
        described in :meth:`forward` (other devices, dtypes, autograd and
        export run the same folded layers in the plain NCHW path).
        Attention biases are cached per input size in eval mode anyway.
        The state dict has the fused layout afterwards: load checkpoints
        before.
        """
        self.eval()
        fuse_conv_norms(self)
        self.deployed = True
        return self

    # -- official checkpoints ---------------------------------------------
    # blocks{s}.{k} of the official model: for s >= 2, k = 0, 1, 2 are the
    # downsampling unit and k >= 3 the blocks.
    _inner_renames = [
        (r'^(dw[01])\.m\.', r'\1.'),
        (r'^(ffn[01])\.m\.', r'\1.'),
        (r'^mixer\.m\.attn\.proj\.1\.', 'mixer.attn.proj.'),
        (r'^mixer\.m\.', 'mixer.'),
        (r'^se\.(conv_reduce|fc1)\.', 'se.reduce.'),
        (r'^se\.(conv_expand|fc2)\.', 'se.expand.'),
    ]

    def _rename_official(self, key):
        key = re.sub(r'\.c\.(weight|bias)$', r'.conv.\1', key)
        match = re.match(r'patch_embed\.(\d)\.(.*)', key)
        if match:
            return f'stem.{int(match.group(1))}.{match.group(2)}'
        match = re.match(r'blocks(\d)\.(\d+)\.(.*)', key)
        if not match:
            return key  # the classifier (head.*): left unexpected
        stage, index, rest = int(match.group(1)) - 1, int(match.group(2)), \
            match.group(3)
        if stage > 0 and index < 3:
            part = ('pre', 'merge', 'post')[index]
            if part != 'merge':  # Sequential(Residual(dw), Residual(FFN))
                rest = re.sub(r'^0\.m\.', 'dw.', rest)
                rest = re.sub(r'^1\.m\.', 'ffn.', rest)
            for pattern, repl in self._inner_renames:
                rest = re.sub(pattern, repl, rest)
            return f'stages.{stage}.downsample.{part}.{rest}'
        block = index - 3 if stage > 0 else index
        for pattern, repl in self._inner_renames:
            rest = re.sub(pattern, repl, rest)
        return f'stages.{stage}.blocks.{block}.{rest}'

    def _fit_bias_table(self, table, target):
        """Embed a learned s x s offset table into the window's table.

        The learned offsets keep their values; offsets beyond them take the
        value of the nearest learned offset (clamped coordinates).
        """
        heads, learned = table.shape
        side, window = int(round(learned**0.5)), self.window_size
        if heads != target.shape[0] or side * side != learned or \
                side > window or target.shape[1] != window * window:
            return table  # reported as a shape mismatch by the loader
        rows = torch.arange(window).clamp(max=side - 1)
        grid = table.reshape(heads, side, side)[:, rows][:, :, rows]
        return grid.reshape(heads, window * window)

    def convert_checkpoint(self, state_dict):
        """Official names -> ours; 4x4 bias tables -> the window's 7x7."""
        if any(k.startswith(('blocks1.', 'patch_embed.')) for k in state_dict):
            state_dict = {
                self._rename_official(k): v
                for k, v in state_dict.items()
                if not k.endswith('attention_bias_idxs')
            }
        ours = self.state_dict()
        for key, value in list(state_dict.items()):
            if key.endswith('attention_biases') and key in ours and \
                    value.shape != ours[key].shape:
                state_dict[key] = self._fit_bias_table(value, ours[key])
        return state_dict
