"""CMT: Convolutional Neural Networks Meet Vision Transformers.

A convolutional stem, then four stages, each a 2x2 stride-2 patch embedding
(LayerNorm) followed by blocks of

* a local perception unit: ``x + dwconv3x3(x)``,
* lightweight multi-head self-attention (LMHSA) whose keys and values come
  from a map reduced by a depthwise ``sr x sr`` stride-``sr`` convolution,
  with a learned relative position bias ``B`` added to the logits,
* an inverted residual feed-forward network (IRFFN),

giving maps at strides 4, 8, 16 and 32, each through an output LayerNorm.

Resolution-free position bias
-----------------------------
The official network learns one bias tensor per stage, shared by the blocks
of the stage, of shape ``(heads, Hq*Wq, Hk*Wk)`` for the query and key grids
of its training resolution (e.g. 56x56 queries and 7x7 keys in CMT-S's first
stage at 224). We keep that tensor as it is, so official checkpoints load
unchanged, and view it as a 4-D table over ``(Hq, Wq, Hk, Wk)``. For another
input size it is resized to the actual grids by separable bicubic
interpolation: first over the query grid, then over the key grid (the
tensor product of two 2-D bicubic resizes is the 4-D bicubic resize). At the
training resolution the stored tensor is used as it is, with no
interpolation. The resize happens once per stage and forward, and every block of the
stage uses the result; nothing derived from the table is kept between
forwards, except in the deployed structure (frozen, eval only), which keeps
the table resized for each grid it has met.

Sizes that are not multiples of the strides: a patch embedding pads its
input on the right and bottom to an even size, and the key/value reduction
pads its input to a multiple of ``sr``, so a stage's grid is
``ceil(H / 2)`` of the previous one and its key grid ``ceil(H / sr)``.

Official checkpoints load through ``init_cfg=dict(type='Pretrained',
checkpoint=...)`` (key map: :mod:`mmvit.converters.cmt`).
"""
import math

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import DropPath
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmvit.converters.cmt import convert_backbone
from mmvit.registry import MODELS
from ..layers import (ConvNormAct, drop_path_rates, run_blocks,
                      transformer_init_cfg)
from ..utils import MMViTBackbone, parse_arch
from ..utils.fold import add_identity, fold_norm_into_conv, foldable_norm

_GELU = dict(type='GELU')


class PadToMultiple(nn.Module):
    """Zero-pad an NCHW map on the right and bottom to multiples of
    ``patch``, so that a ``patch x patch`` stride-``patch`` convolution sees
    every pixel (``ceil(H / patch)`` outputs)."""

    def __init__(self, patch):
        super().__init__()
        self.patch = patch

    def forward(self, x):
        pad_h, pad_w = -x.shape[2] % self.patch, -x.shape[3] % self.patch
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        return x


def tokens_to_map(x, size):
    """``(B, H*W, C)`` tokens as a ``(B, C, H, W)`` map (a view: of
    channels-last memory when the tokens are contiguous)."""
    batch, _, channels = x.shape
    return x.reshape(batch, *size, channels).permute(0, 3, 1, 2)


class ResizableRelativePositionBias(nn.Module):
    """A ``(heads, Nq, Nk)`` bias learned at one query/key grid, usable at any.

    Args:
        num_heads (int): attention heads.
        q_size (tuple[int, int]): query grid of the training resolution.
        k_size (tuple[int, int]): key grid of the training resolution.
        deploy (bool): the deployed structure (see :meth:`switch_to_deploy`).
    """

    def __init__(self, num_heads, q_size, k_size, deploy=False):
        super().__init__()
        self.num_heads = num_heads
        self.q_size, self.k_size = tuple(q_size), tuple(k_size)
        self.table = nn.Parameter(
            torch.randn(num_heads, math.prod(q_size), math.prod(k_size)))
        self.deploy = deploy
        self.resized = {}
        self.register_load_state_dict_post_hook(self._forget_resized)

    def resize(self, q_size, k_size):
        """The table interpolated (bicubic) to the given grids, over the
        query grid then over the key grid; a grid equal to the stored one is
        left as it is."""
        heads, (hq, wq), (hk, wk) = self.num_heads, self.q_size, self.k_size
        table = self.table.reshape(heads, hq, wq, hk * wk)
        if (hq, wq) != tuple(q_size):
            table = F.interpolate(
                table.permute(0, 3, 1, 2), size=q_size, mode='bicubic',
                align_corners=False).permute(0, 2, 3, 1)
        num_q = q_size[0] * q_size[1]
        table = table.reshape(heads, num_q, hk, wk)
        if (hk, wk) != tuple(k_size):
            table = F.interpolate(table, size=k_size, mode='bicubic',
                                  align_corners=False)
        return table.reshape(heads, num_q, k_size[0] * k_size[1])

    def forward(self, q_size, k_size):
        q_size, k_size = tuple(q_size), tuple(k_size)
        if q_size == self.q_size and k_size == self.k_size:
            return self.table
        if not self.deploy:
            return self.resize(q_size, k_size)
        key = (q_size, k_size, self.table.device, self.table.dtype)
        if key not in self.resized:
            with torch.no_grad():
                self.resized[key] = self.resize(q_size, k_size)
        return self.resized[key]

    def switch_to_deploy(self):
        """Deployed (frozen, eval only), the table resized for a grid is
        kept for later forwards at that grid (and dropped when a state dict
        is loaded)."""
        self.deploy = True

    @staticmethod
    def _forget_resized(module, incompatible_keys):
        module.resized.clear()

    def extra_repr(self):
        return (f'num_heads={self.num_heads}, q_size={self.q_size}, '
                f'k_size={self.k_size}')


class LightweightAttention(nn.Module):
    """LMHSA: softmax(q k^T / sqrt(d) + B) v over a ``sr``-reduced key map."""

    def __init__(self, dim, num_heads, sr_ratio, qkv_bias=True,
                 norm_cfg=dict(type='BN'), fused_attn=True, deploy=False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'CMT: channels {dim} are not divisible by '
                             f'{num_heads} heads')
        self.num_heads = num_heads
        self.sr_ratio = sr_ratio
        self.fused_attn = fused_attn
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.sr = ConvNormAct(
            dim, dim, sr_ratio, stride=sr_ratio, groups=dim, bias=True,
            norm_cfg=norm_cfg, deploy=deploy) if sr_ratio > 1 else None
        self.pad = PadToMultiple(sr_ratio) if sr_ratio > 1 else None

    def key_size(self, size):
        # ceil(s / sr), in the form an export's shape reasoning shares with
        # the padded convolution's output size
        return tuple((s - 1) // self.sr_ratio + 1 for s in size)

    def _heads(self, x):
        batch, length, channels = x.shape
        return x.reshape(batch, length, self.num_heads,
                         channels // self.num_heads).permute(0, 2, 1, 3)

    def forward(self, x, size, bias):
        batch, length, channels = x.shape
        q = self._heads(self.q(x))
        kv = x
        if self.sr is not None:
            kv = self.pad(tokens_to_map(x, size))
            kv = self.sr(kv).reshape(batch, channels, -1)
            kv = kv.permute(0, 2, 1)
        k, v = self._heads(self.k(kv)), self._heads(self.v(kv))
        if self.fused_attn:
            out = F.scaled_dot_product_attention(q, k, v,
                                                 attn_mask=bias.to(q.dtype))
        else:  # the official order of operations, bit for bit
            attn = (q @ k.transpose(-2, -1)) * q.shape[-1]**-0.5 + bias
            out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(batch, length, channels))


class IRFFN(nn.Module):
    """conv1x1-GELU-BN; ``x + dwconv3x3(x)``-GELU-BN; conv1x1-BN.

    Deployed (:meth:`switch_to_deploy`, or ``deploy=True``) the last two
    BatchNorms are folded into the last 1x1 convolution and the depthwise
    residual's identity into the depthwise kernels.
    """

    def __init__(self, dim, hidden, norm_cfg=dict(type='BN'), deploy=False):
        super().__init__()
        self.expand = ConvNormAct(dim, hidden, 1, norm_cfg=norm_cfg,
                                  act_cfg=_GELU, act_first=True)
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.dw_act = nn.GELU()
        self.dw_bn = build_norm_layer(norm_cfg, hidden)[1]
        self.deploy = deploy and isinstance(self.dw_bn, _BatchNorm)
        if self.deploy:
            self.dw_bn = nn.Identity()
        self.project = ConvNormAct(hidden, dim, 1, norm_cfg=norm_cfg,
                                   deploy=deploy)

    def forward(self, x, size):
        x = self.expand(tokens_to_map(x, size))
        x = self.dw(x) if self.deploy else self.dw(x) + x
        x = self.dw_bn(self.dw_act(x))
        return self.project(x).flatten(2).permute(0, 2, 1)

    def switch_to_deploy(self):
        """Fold ``dw_bn`` into the projection (exact: a 1x1 convolution
        without padding) and the identity into the depthwise kernels."""
        if self.deploy or not foldable_norm(self.dw_bn):
            return
        self.project.switch_to_deploy()
        self.project.conv = fold_norm_into_conv(self.dw_bn,
                                                self.project.conv)
        self.dw_bn = nn.Identity()
        add_identity(self.dw)
        self.deploy = True


class CMTBlock(nn.Module):
    """LPU ``x + dwconv3x3(x)``, then pre-norm LMHSA and IRFFN residual
    branches, on tokens (deployed, ``lpu`` holds the LPU's identity in its
    kernel centres)."""

    def __init__(self, dim, num_heads, sr_ratio, mlp_ratio, drop_path=0.,
                 norm_cfg=dict(type='BN'), fused_attn=True, deploy=False):
        super().__init__()
        self.deploy = deploy
        self.lpu = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = LightweightAttention(dim, num_heads, sr_ratio,
                                         norm_cfg=norm_cfg,
                                         fused_attn=fused_attn,
                                         deploy=deploy)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.ffn = IRFFN(dim, int(dim * mlp_ratio), norm_cfg, deploy)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x, size, bias):
        fmap = tokens_to_map(x, size)
        fmap = self.lpu(fmap) if self.deploy else self.lpu(fmap) + fmap
        x = fmap.flatten(2).permute(0, 2, 1)
        x = x + self.drop_path(self.attn(self.norm1(x), size, bias))
        return x + self.drop_path(self.ffn(self.norm2(x), size))

    def switch_to_deploy(self):
        """Fold the LPU's identity into its kernels."""
        if not self.deploy:
            add_identity(self.lpu)
            self.deploy = True


class PatchEmbed(nn.Module):
    """2x2 stride-2 convolution (odd sizes padded) and LayerNorm on tokens."""

    def __init__(self, in_channels, channels):
        super().__init__()
        self.pad = PadToMultiple(2)
        self.proj = nn.Conv2d(in_channels, channels, 2, stride=2)
        self.norm = nn.LayerNorm(channels)

    def forward(self, x):
        x = self.proj(self.pad(x))
        size = tuple(x.shape[2:])
        return self.norm(x.flatten(2).transpose(1, 2)), size


class CMTStage(nn.Module):
    """Patch embedding, the stage's position bias, and its blocks."""
    with_cp = False  # set by the backbone's ``with_cp``

    def __init__(self, in_channels, channels, depth, num_heads, sr_ratio,
                 mlp_ratio, train_grid, dpr, norm_cfg, fused_attn=True,
                 deploy=False):
        super().__init__()
        self.patch_embed = PatchEmbed(in_channels, channels)
        key_grid = (train_grid // sr_ratio, ) * 2
        self.pos_bias = ResizableRelativePositionBias(
            num_heads, (train_grid, ) * 2, key_grid, deploy)
        self.blocks = nn.ModuleList([
            CMTBlock(channels, num_heads, sr_ratio, mlp_ratio, dpr[j],
                     norm_cfg, fused_attn, deploy) for j in range(depth)
        ])

    def forward(self, x):
        """NCHW map in, tokens ``(B, H*W, C)`` and ``(H, W)`` out."""
        x, size = self.patch_embed(x)
        bias = self.pos_bias(size, self.blocks[0].attn.key_size(size))
        return run_blocks(self.blocks, x, size, bias,
                          with_cp=self.with_cp), size


@MODELS.register_module()
class CMT(MMViTBackbone):
    """CMT backbone for dense prediction and classification.

    Args:
        arch (str | dict): ``'ti'``, ``'xs'``, ``'s'``, ``'b'`` or a dict with
            keys ``channels``, ``depths``, ``stem_channels``, ``mlp_ratio``,
            ``num_heads``, ``sr_ratios`` and ``train_size`` (the ImageNet
            resolution at which the position biases are stored).
        in_channels (int): input channels. Defaults to 3.
        out_indices (Sequence[int]): stages to output. Defaults to all four.
        frozen_stages (int): -1 freezes nothing, 0 the stem, ``i`` the stem
            and stages ``0..i-1`` with their output norms.
        norm_eval (bool): keep BatchNorm layers in eval mode while training.
        drop_path_rate (float): block ``j`` of all ``N`` blocks gets
            ``rate * j / (N - 1)``.
        norm_cfg (dict): the BatchNorm of the stem, IRFFNs and key/value
            reductions. Defaults to BN.
        fused_attn (bool): use ``F.scaled_dot_product_attention`` (less
            memory; another float rounding). With ``False`` the attention
            is computed in the official order of operations.
        out_norms (bool): pass each output through its own LayerNorm
            (``norm{i}``, for dense prediction). The official classifier
            has none (its head starts with a 1x1 convolution), so the
            ImageNet configs set ``False``. Defaults to True.
        init_cfg (dict | list, optional): ``dict(type='Pretrained',
            checkpoint=...)`` for ImageNet weights; by default the official
            initialisation (truncated normal linear layers, fan-out Kaiming
            convolutions, unit norms; position biases standard normal).
        with_cp (bool): recompute each block in the backward pass instead
            of keeping its activations (``torch.utils.checkpoint``):
            less memory for more time while training.
        deploy (bool): build the deployed structure (see
            :class:`~mmvit.models.utils.MMViTBackbone`).
    """
    checkpoint_converter = staticmethod(convert_backbone)
    arch_settings = {
        'ti': dict(channels=[46, 92, 184, 368], depths=[2, 2, 10, 2],
                   stem_channels=16, mlp_ratio=3.6, num_heads=[1, 2, 4, 8],
                   sr_ratios=[8, 4, 2, 1], train_size=160),
        'xs': dict(channels=[52, 104, 208, 416], depths=[3, 3, 12, 3],
                   stem_channels=16, mlp_ratio=3.77, num_heads=[1, 2, 4, 8],
                   sr_ratios=[8, 4, 2, 1], train_size=192),
        's': dict(channels=[64, 128, 256, 512], depths=[3, 3, 16, 3],
                  stem_channels=32, mlp_ratio=4, num_heads=[1, 2, 4, 8],
                  sr_ratios=[8, 4, 2, 1], train_size=224),
        'b': dict(channels=[76, 152, 304, 608], depths=[4, 4, 20, 4],
                  stem_channels=38, mlp_ratio=4, num_heads=[1, 2, 4, 8],
                  sr_ratios=[8, 4, 2, 1], train_size=256),
    }

    def __init__(self,
                 arch='s',
                 in_channels=3,
                 out_indices=(0, 1, 2, 3),
                 frozen_stages=-1,
                 norm_eval=False,
                 drop_path_rate=0.1,
                 norm_cfg=dict(type='BN'),
                 fused_attn=True,
                 out_norms=True,
                 with_cp=False,
                 deploy=False,
                 init_cfg=None):
        settings = parse_arch(arch, self.arch_settings, 'CMT',
                              ('channels', 'num_heads', 'sr_ratios'))
        channels, depths = settings['channels'], settings['depths']
        num_stages = len(depths)
        train_size = settings['train_size']
        if train_size % 2**(num_stages + 1):
            raise ValueError(f'CMT: arch train_size {train_size} is not a '
                             f'multiple of {2**(num_stages + 1)}')
        if init_cfg is None:
            init_cfg = transformer_init_cfg(('LayerNorm', '_BatchNorm'))
        super().__init__(num_stages, out_indices, frozen_stages, norm_eval,
                         in_channels, init_cfg, deploy, with_cp)
        self.arch = settings
        self._set_stage_outputs(channels, first_stride=4)

        stem = settings['stem_channels']
        self.stem = nn.Sequential(*[
            ConvNormAct(in_channels if i == 0 else stem, stem, 3,
                        stride=2 if i == 0 else 1, padding=1,
                        norm_cfg=norm_cfg, act_cfg=_GELU, act_first=True)
            for i in range(3)
        ])
        dprs = drop_path_rates(depths, drop_path_rate)
        self.stages = nn.ModuleList([
            CMTStage(stem if i == 0 else channels[i - 1], channels[i],
                     depths[i], settings['num_heads'][i],
                     settings['sr_ratios'][i], settings['mlp_ratio'],
                     train_size // 2**(i + 2), dprs[i], norm_cfg, fused_attn,
                     deploy)
            for i in range(num_stages)
        ])
        self.out_norms = out_norms
        for i in self.out_indices if out_norms else ():
            self.add_module(f'norm{i}', nn.LayerNorm(channels[i], eps=1e-6))
        self._finish_init()

    def forward(self, x):
        self.check_input(x)
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            tokens, size = stage(x)
            x = tokens_to_map(tokens, size)  # channels-last view, no copy
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(tokens) if self.out_norms \
                    else tokens
                outs.append(tokens_to_map(out, size).contiguous())
        return tuple(outs)
