"""EfficientViT (Microsoft, CVPR 2023): cascaded group attention.

A stride-16 convolutional patch embedding, then three stages at strides 16,
32 and 64. Every layer is a convolution followed by BatchNorm. A block is a
"sandwich": depthwise conv, FFN, local window attention, depthwise conv,
FFN, each residual. The attention is
cascaded group attention (CGA): head ``i`` sees its own channel chunk plus the
previous head's output, its query passes a depthwise conv with that head's
kernel, and a learned bias per window offset ``(|dy|, |dx|)`` is added to its
logits. Stages 2 and 3 start with a downsampling unit (residual dwconv + FFN,
inverted-residual patch merging with squeeze-excite, residual dwconv + FFN).

Any input size works: maps larger than the window (7) in either direction
are zero-padded on the right and bottom to multiples of the window and
attended per window; smaller maps attend as a whole with the offsets of
their own size. Official checkpoints load through ``init_cfg=dict(type=
'Pretrained', checkpoint=...)`` (key map and bias-table fitting:
:mod:`mmvit.converters.efficientvit`).
"""
import torch
from mmcv.cnn.bricks import DropPath
from torch import nn

from mmvit.converters.efficientvit import convert_backbone
from mmvit.registry import MODELS
from ..layers import ConvNormAct, drop_path_rates, run_blocks
from ..utils import MMViTBackbone, parse_arch
from ..utils.fold import add_identity


def conv_bn(in_channels, out_channels, kernel_size=1, stride=1, groups=1,
            bn_weight_init=1., deploy=False):
    """Conv (no bias) + BN, the BN weight starting at ``bn_weight_init``;
    deployed, one conv with a bias."""
    layer = ConvNormAct(in_channels, out_channels, kernel_size, stride,
                        kernel_size // 2, groups=groups, bias=False,
                        deploy=deploy)
    if not deploy:
        nn.init.constant_(layer.bn.weight, bn_weight_init)
        nn.init.constant_(layer.bn.bias, 0)
    return layer


class FFN(nn.Module):
    """1x1 conv-BN (C -> 2C), ReLU, 1x1 conv-BN (2C -> C, BN weight 0)."""

    def __init__(self, channels, hidden, deploy=False):
        super().__init__()
        self.pw1 = conv_bn(channels, hidden, deploy=deploy)
        self.act = nn.ReLU()
        self.pw2 = conv_bn(hidden, channels, bn_weight_init=0.,
                           deploy=deploy)

    def forward(self, x):
        return self.pw2(self.act(self.pw1(x)))


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


class CascadedGroupAttention(nn.Module):
    """CGA over one map (a window or a map no larger than a window).

    Args:
        channels (int): input and output channels.
        num_heads (int): heads; each gets ``channels / num_heads`` channels.
        kernels (Sequence[int]): query depthwise kernel of each head.
        key_dim (int): query/key channels per head.
        window_size (int): the largest map attended as a whole; the bias
            table holds its ``window_size**2`` offsets.
        deploy (bool): build the folded conv layers.
    """

    def __init__(self, channels, num_heads, kernels, key_dim=16,
                 window_size=7, deploy=False):
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
            conv_bn(channels // num_heads, 2 * key_dim + self.value_dim,
                    deploy=deploy) for _ in range(num_heads)
        ])
        self.dws = nn.ModuleList([
            conv_bn(key_dim, key_dim, kernels[i], groups=key_dim,
                    deploy=deploy) for i in range(num_heads)
        ])
        self.proj = conv_bn(self.value_dim * num_heads, channels,
                            bn_weight_init=0., deploy=deploy)
        self.attention_biases = nn.Parameter(
            torch.zeros(num_heads, window_size * window_size))

    def offset_index(self, size):
        """(N, N) index of |dy| * window + |dx| for an H x W grid."""
        device = self.attention_biases.device
        grid = torch.stack(torch.meshgrid(
            torch.arange(size[0], device=device),
            torch.arange(size[1], device=device), indexing='ij')).flatten(1)
        offsets = (grid[:, :, None] - grid[:, None, :]).abs()
        return offsets[0] * self.window_size + offsets[1]

    def bias(self, size):
        """(heads, N, N) bias of an H x W map, gathered from the table at
        every call (cheap; nothing to go stale)."""
        return self.attention_biases[:, self.offset_index(size)]

    def forward(self, x, bias=None, query_mask=None):
        """CGA over the map ``x`` (B, C, H, W) with the logit ``bias``
        (heads, N, N) (by default :meth:`bias` of its size); the query
        conv reads ``q * query_mask`` where one is given (zero padding
        that is not part of the map)."""
        batch, _, height, width = x.shape
        if bias is None:
            bias = self.bias((height, width))
        chunks = x.chunk(self.num_heads, dim=1)
        outs = []
        feat = chunks[0]
        for i, (qkv, dw) in enumerate(zip(self.qkvs, self.dws)):
            if i > 0:  # the cascade: add the previous head's output
                feat = feat + chunks[i]
            q, k, v = qkv(feat).view(batch, -1, height, width).split(
                [self.key_dim, self.key_dim, self.value_dim], dim=1)
            if query_mask is not None:
                q = q * query_mask
            q, k, v = dw(q).flatten(2), k.flatten(2), v.flatten(2)
            attn = (q.transpose(-2, -1) @ k) * self.scale + bias[i]
            attn = attn.softmax(dim=-1)
            feat = (v @ attn.transpose(-2, -1)).view(batch, self.value_dim,
                                                     height, width)
            outs.append(feat)
        return self.proj(torch.relu(torch.cat(outs, 1)))


def attend_per_window(x, window, attend):
    """``attend`` over the ``(B, H, W, C)`` map ``x``: on the whole map when
    it is no larger than ``window`` in both directions, else on each window
    of the map zero-padded on the right and bottom to whole windows
    (``attend`` maps ``(N, window, window, C)`` to the same shape)."""
    batch, height, width, channels = x.shape
    win = window
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


class LocalWindowAttention(nn.Module):
    """CGA per ``window x window`` window (zero-padded), or on the whole map
    when it is no larger than a window."""

    def __init__(self, channels, num_heads, kernels, key_dim=16,
                 window_size=7, deploy=False):
        super().__init__()
        self.window_size = window_size
        self.attn = CascadedGroupAttention(channels, num_heads, kernels,
                                           key_dim, window_size, deploy)

    def forward(self, x):
        return attend_per_window(
            x.permute(0, 2, 3, 1), self.window_size,
            lambda w: self.attn(w.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        ).permute(0, 3, 1, 2)


def deploy_residual_convs(module, layers):
    """Whether ``module`` is deployed after folding the identity into the
    conv of each of its residual conv-BN ``layers`` (once their
    BatchNorms are folded; nothing changes where one is not)."""
    if module.deploy:
        return True
    if any('bn' in layer._modules for layer in layers):
        return False
    for layer in layers:
        add_identity(layer.conv)
    return True


class EfficientViTBlock(nn.Module):
    """x + dw0, x + ffn0, x + attention, x + dw1, x + ffn1.

    Deployed (:meth:`switch_to_deploy`, or ``deploy=True``), ``dw0`` and
    ``dw1`` hold the residual's identity in their kernel centres.
    """

    def __init__(self, channels, num_heads, kernels, key_dim=16,
                 window_size=7, drop_path=0., deploy=False):
        super().__init__()
        self.deploy = deploy
        self.dw0 = conv_bn(channels, channels, 3, groups=channels,
                           bn_weight_init=0., deploy=deploy)
        self.ffn0 = FFN(channels, 2 * channels, deploy)
        self.mixer = LocalWindowAttention(channels, num_heads, kernels,
                                          key_dim, window_size, deploy)
        self.dw1 = conv_bn(channels, channels, 3, groups=channels,
                           bn_weight_init=0., deploy=deploy)
        self.ffn1 = FFN(channels, 2 * channels, deploy)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        x = self.dw0(x) if self.deploy else x + self.drop_path(self.dw0(x))
        x = x + self.drop_path(self.ffn0(x))
        x = x + self.drop_path(self.mixer(x))
        x = self.dw1(x) if self.deploy else x + self.drop_path(self.dw1(x))
        return x + self.drop_path(self.ffn1(x))

    def switch_to_deploy(self):
        """Fold the identity of the two depthwise residuals into their
        (BatchNorm-folded) kernels."""
        self.deploy = deploy_residual_convs(self, (self.dw0, self.dw1))


class ConvFFN(nn.Module):
    """x + dwconv3x3-BN(x), then x + FFN(x): around a patch merging
    (deployed, ``dw`` holds the identity in its kernel centres)."""

    def __init__(self, channels, deploy=False):
        super().__init__()
        self.deploy = deploy
        self.dw = conv_bn(channels, channels, 3, groups=channels,
                          deploy=deploy)
        self.ffn = FFN(channels, 2 * channels, deploy)

    def forward(self, x):
        x = self.dw(x) if self.deploy else x + self.dw(x)
        return x + self.ffn(x)

    def switch_to_deploy(self):
        self.deploy = deploy_residual_convs(self, (self.dw, ))


class PatchMerging(nn.Module):
    """1x1 (C -> 4C), ReLU, stride-2 dw3x3, ReLU, SE, 1x1 (4C -> C')."""

    def __init__(self, in_channels, out_channels, deploy=False):
        super().__init__()
        hidden = 4 * in_channels
        self.conv1 = conv_bn(in_channels, hidden, deploy=deploy)
        self.conv2 = conv_bn(hidden, hidden, 3, stride=2, groups=hidden,
                             deploy=deploy)
        self.se = SqueezeExcite(hidden, 0.25)
        self.conv3 = conv_bn(hidden, out_channels, deploy=deploy)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.conv3(self.se(x))


class Downsample(nn.Sequential):
    """ConvFFN at the old width, patch merging, ConvFFN at the new width."""

    def __init__(self, in_channels, out_channels, deploy=False):
        super().__init__()
        self.pre = ConvFFN(in_channels, deploy)
        self.merge = PatchMerging(in_channels, out_channels, deploy)
        self.post = ConvFFN(out_channels, deploy)


class EfficientViTStage(nn.Module):
    """An optional downsampling unit, then the blocks."""
    with_cp = False  # set by the backbone's ``with_cp``

    def __init__(self, in_channels, channels, depth, num_heads, kernels,
                 key_dim, window_size, dpr, downsample, deploy=False):
        super().__init__()
        self.downsample = Downsample(in_channels, channels,
                                     deploy) if downsample else None
        self.blocks = nn.Sequential(*[
            EfficientViTBlock(channels, num_heads, kernels, key_dim,
                              window_size, dpr[j], deploy)
            for j in range(depth)
        ])

    def forward(self, x):
        if self.downsample is not None:
            x = self.downsample(x)
        return run_blocks(self.blocks, x, with_cp=self.with_cp)


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
        with_cp (bool): recompute each block in the backward pass instead
            of keeping its activations (``torch.utils.checkpoint``):
            less memory for more time while training.
        deploy (bool): build the deployed structure (see
            :class:`~mmvit.models.utils.MMViTBackbone`).
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=...)``.
    """
    checkpoint_converter = staticmethod(convert_backbone)
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
                 with_cp=False,
                 deploy=False,
                 init_cfg=None):
        settings = parse_arch(arch, self.arch_settings, 'EfficientViT',
                              ('channels', 'num_heads'))
        channels, depths = settings['channels'], settings['depths']
        num_stages = len(depths)
        if channels[0] % 8:
            raise ValueError(f'EfficientViT: the first stage width '
                             f'{channels[0]} must be a multiple of 8')
        super().__init__(num_stages, out_indices, frozen_stages, norm_eval,
                         in_channels, init_cfg, deploy, with_cp)
        self.arch = settings
        self.window_size = window_size
        self._set_stage_outputs(channels, first_stride=16)

        widths = [in_channels] + [channels[0] // 2**k for k in (3, 2, 1, 0)]
        stem = []
        for i in range(4):
            stem.append(conv_bn(widths[i], widths[i + 1], 3, stride=2,
                                deploy=deploy))
            if i < 3:
                stem.append(nn.ReLU())
        self.stem = nn.Sequential(*stem)
        dprs = drop_path_rates(depths, drop_path_rate)
        self.stages = nn.ModuleList([
            EfficientViTStage(channels[max(i - 1, 0)], channels[i], depths[i],
                              settings['num_heads'][i], settings['kernels'],
                              key_dim, window_size, dprs[i], i > 0, deploy)
            for i in range(num_stages)
        ])
        self._finish_init()
