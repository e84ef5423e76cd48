"""CAS-ViT: Convolutional Additive Self-attention Vision Transformers.

A four-stage pyramid of BatchNorm/convolution blocks whose token mixer (CATM)
replaces the query-key product by the sum of a spatially and a channel gated
query and key, so its cost is linear in the number of tokens. Outputs after
each stage pass through their own BatchNorm, at strides 4, 8, 16 and 32.

Official ImageNet checkpoints (``model`` key, ``patch_embed.*``,
``network.{0..6}.*``) load unchanged through
``init_cfg=dict(type='Pretrained', checkpoint=...)``; see
:meth:`CASViT.convert_checkpoint` for the key mapping.
"""
import re

import torch
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import DropPath
from torch import nn

from mmvit.registry import MODELS
from ..layers import ConvMlp, ConvNormAct, drop_path_rates
from ..utils import MMViTBackbone, parse_arch


class SpatialGate(nn.Module):
    """x * sigmoid(conv1x1_{C->1}(ReLU(BN(dwconv3x3(x)))))."""

    def __init__(self, channels, norm_cfg):
        super().__init__()
        self.dw = ConvNormAct(channels, channels, 3, padding=1,
                              groups=channels, bias=True, norm_cfg=norm_cfg,
                              act_cfg=dict(type='ReLU'))
        self.score = nn.Conv2d(channels, 1, 1, bias=False)

    def forward(self, x):
        return x * torch.sigmoid(self.score(self.dw(x)))


class ChannelGate(nn.Module):
    """x * sigmoid(conv1x1_{C->C}(global_avg_pool(x)))."""

    def __init__(self, channels):
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x):
        return x * torch.sigmoid(self.fc(x.mean((2, 3), keepdim=True)))


class AdditiveTokenMixer(nn.Module):
    """CATM: proj(dwc(G_q(q) + G_k(k)) * v), each gate spatial then channel."""

    def __init__(self, channels, norm_cfg, qkv_bias=False, drop=0.):
        super().__init__()
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=qkv_bias)
        self.q_gate = nn.Sequential(
            SpatialGate(channels, norm_cfg), ChannelGate(channels))
        self.k_gate = nn.Sequential(
            SpatialGate(channels, norm_cfg), ChannelGate(channels))
        self.dwc = nn.Conv2d(channels, channels, 3, padding=1,
                             groups=channels)
        self.proj = nn.Conv2d(channels, channels, 3, padding=1,
                              groups=channels)
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=1)
        mixed = self.dwc(self.q_gate(q) + self.k_gate(k))
        return self.drop(self.proj(mixed * v))


class CASBlock(nn.Module):
    """x + LocalIntegration(x); x + CATM(BN(x)); x + MLP(BN(x))."""

    def __init__(self, channels, mlp_ratio=4., drop_path=0., norm_cfg=None,
                 act_cfg=None):
        super().__init__()
        # conv1x1 -> BN -> depthwise conv3x3 -> act -> conv1x1
        self.local_integration = nn.Sequential(
            ConvNormAct(channels, channels, 1, bias=True, norm_cfg=norm_cfg,
                        act_cfg=None),
            ConvNormAct(channels, channels, 3, padding=1, groups=channels,
                        bias=True, norm_cfg=None, act_cfg=act_cfg),
            nn.Conv2d(channels, channels, 1))
        self.norm1 = build_norm_layer(norm_cfg, channels)[1]
        self.token_mixer = AdditiveTokenMixer(channels, norm_cfg)
        self.norm2 = build_norm_layer(norm_cfg, channels)[1]
        self.mlp = ConvMlp(channels, int(channels * mlp_ratio), act_cfg)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        x = x + self.local_integration(x)
        x = x + self.drop_path(self.token_mixer(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class CASStage(nn.Module):
    """An optional stride-2 conv3x3 + BN downsampling, then the blocks."""

    def __init__(self, in_channels, channels, depth, mlp_ratio, dpr,
                 downsample, norm_cfg, act_cfg):
        super().__init__()
        self.downsample = ConvNormAct(
            in_channels, channels, 3, stride=2, padding=1, bias=True,
            norm_cfg=norm_cfg, act_cfg=None) if downsample else None
        self.blocks = nn.Sequential(*[
            CASBlock(channels, mlp_ratio, dpr[i], norm_cfg, act_cfg)
            for i in range(depth)
        ])

    def forward(self, x):
        if self.downsample is not None:
            x = self.downsample(x)
        return self.blocks(x)


@MODELS.register_module()
class CASViT(MMViTBackbone):
    """CAS-ViT backbone for dense prediction and classification.

    Args:
        arch (str | dict): ``'xs'``, ``'s'``, ``'m'``, ``'t'`` or a dict with
            keys ``depths``, ``channels`` and ``mlp_ratio``.
        in_channels (int): input channels. Defaults to 3.
        out_indices (Sequence[int]): stages to output. Defaults to all four.
        frozen_stages (int): -1 freezes nothing, 0 the stem, ``i`` the stem
            and stages ``0..i-1`` with their output norms.
        norm_eval (bool): keep BatchNorm layers in eval mode while training
            (what the official detection code does).
        drop_path_rate (float): block ``j`` of all ``N`` blocks gets
            ``rate * j / (N - 1)``.
        norm_cfg (dict): normalisation of every layer. Defaults to BN.
        act_cfg (dict): activation of blocks. Defaults to GELU.
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained',
            checkpoint='checkpoints/cas_vit_s.pth')``.
    """
    arch_settings = {
        'xs': dict(depths=[2, 2, 4, 2], channels=[48, 56, 112, 220],
                   mlp_ratio=4),
        's': dict(depths=[3, 3, 6, 3], channels=[48, 64, 128, 256],
                  mlp_ratio=4),
        'm': dict(depths=[3, 3, 6, 3], channels=[64, 96, 192, 384],
                  mlp_ratio=4),
        't': dict(depths=[3, 3, 6, 3], channels=[96, 128, 256, 512],
                  mlp_ratio=4),
    }
    strides = (4, 8, 16, 32)

    def __init__(self,
                 arch='s',
                 in_channels=3,
                 out_indices=(0, 1, 2, 3),
                 frozen_stages=-1,
                 norm_eval=False,
                 drop_path_rate=0.,
                 norm_cfg=dict(type='BN'),
                 act_cfg=dict(type='GELU'),
                 init_cfg=None):
        settings = parse_arch(arch, self.arch_settings, 'CASViT',
                              ('channels', ))
        depths, channels = settings['depths'], settings['channels']
        super().__init__(len(depths), out_indices, frozen_stages, norm_eval,
                         in_channels, init_cfg)
        self.channels = tuple(channels)
        self.out_channels = tuple(channels[i] for i in self.out_indices)
        self.out_strides = tuple(2**(i + 2) for i in self.out_indices)

        stem_act = dict(type='ReLU')
        self.stem = nn.Sequential(
            ConvNormAct(in_channels, channels[0] // 2, 3, stride=2,
                        padding=1, bias=True, norm_cfg=norm_cfg,
                        act_cfg=stem_act),
            ConvNormAct(channels[0] // 2, channels[0], 3, stride=2,
                        padding=1, bias=True, norm_cfg=norm_cfg,
                        act_cfg=stem_act))
        dprs = drop_path_rates(depths, drop_path_rate)
        self.stages = nn.ModuleList([
            CASStage(channels[max(i - 1, 0)], channels[i], depths[i],
                     settings['mlp_ratio'], dprs[i], i > 0, norm_cfg, act_cfg)
            for i in range(self.num_stages)
        ])
        for i in self.out_indices:
            self.add_module(f'norm{i}',
                            build_norm_layer(norm_cfg, channels[i])[1])
        self._freeze_stages()

    # Official key layout -> ours. ``network.{2i}`` is stage i's blocks,
    # ``network.{2i-1}`` the downsampling in front of stage i.
    _block_renames = [
        (r'local_perception\.network\.0\.', 'local_integration.0.conv.'),
        (r'local_perception\.network\.1\.', 'local_integration.0.bn.'),
        (r'local_perception\.network\.2\.', 'local_integration.1.conv.'),
        (r'local_perception\.network\.4\.', 'local_integration.2.'),
        (r'attn\.oper_([qk])\.0\.block\.0\.', r'token_mixer.\1_gate.0.dw.conv.'),
        (r'attn\.oper_([qk])\.0\.block\.1\.', r'token_mixer.\1_gate.0.dw.bn.'),
        (r'attn\.oper_([qk])\.0\.block\.3\.', r'token_mixer.\1_gate.0.score.'),
        (r'attn\.oper_([qk])\.1\.block\.1\.', r'token_mixer.\1_gate.1.fc.'),
        (r'attn\.', 'token_mixer.'),
    ]
    _stem_renames = {'0': 'stem.0.conv.', '1': 'stem.0.bn.',
                     '3': 'stem.1.conv.', '4': 'stem.1.bn.'}

    def _rename_official(self, key):
        match = re.match(r'patch_embed\.(\d)\.(.*)', key)
        if match:
            return self._stem_renames[match.group(1)] + match.group(2)
        match = re.match(r'network\.(\d+)\.(proj|norm)\.(.*)', key)
        if match:
            index = int(match.group(1))
            layer = 'conv' if match.group(2) == 'proj' else 'bn'
            return f'stages.{(index + 1) // 2}.downsample.{layer}.' \
                   f'{match.group(3)}'
        match = re.match(r'network\.(\d+)\.(\d+)\.(.*)', key)
        if match:
            rest = match.group(3)
            for pattern, repl in self._block_renames:
                rest, count = re.subn('^' + pattern, repl, rest)
                if count:
                    break
            return f'stages.{int(match.group(1)) // 2}.blocks.' \
                   f'{match.group(2)}.{rest}'
        # output norms of the official dense-prediction model: norm{0,2,4,6}
        match = re.match(r'norm([0246])\.(.*)', key)
        if match:
            return f'norm{int(match.group(1)) // 2}.{match.group(2)}'
        return key

    def convert_checkpoint(self, state_dict):
        """Rename official ``patch_embed``/``network`` keys; keep ours."""
        if not any(k.startswith(('patch_embed.', 'network.'))
                   for k in state_dict):
            return state_dict
        return {self._rename_official(k): v for k, v in state_dict.items()}
