"""CAS-ViT: Convolutional Additive Self-attention Vision Transformers.

A four-stage pyramid of BatchNorm/convolution blocks whose token mixer (CATM)
replaces the query-key product by the sum of a spatially and a channel gated
query and key, so its cost is linear in the number of tokens. Outputs after
each stage pass through their own BatchNorm, at strides 4, 8, 16 and 32.
Official checkpoints load through ``init_cfg=dict(type='Pretrained',
checkpoint=...)`` (key map: :mod:`mmvit.converters.cas_vit`).
"""
import torch
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import DropPath
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmvit.converters.cas_vit import convert_backbone
from mmvit.registry import MODELS
from ..layers import ConvMlp, ConvNormAct, drop_path_rates, run_blocks
from ..utils import MMViTBackbone, parse_arch
from ..utils.fold import fold_norm_into_conv, foldable_norm


class SpatialGate(nn.Module):
    """x * sigmoid(conv1x1_{C->1}(ReLU(BN(dwconv3x3(x)))))."""

    def __init__(self, channels, norm_cfg, deploy=False):
        super().__init__()
        self.dw = ConvNormAct(channels, channels, 3, padding=1,
                              groups=channels, bias=True, norm_cfg=norm_cfg,
                              act_cfg=dict(type='ReLU'), deploy=deploy)
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

    def __init__(self, channels, norm_cfg, qkv_bias=False, drop=0.,
                 deploy=False):
        super().__init__()
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=qkv_bias)
        self.q_gate = nn.Sequential(
            SpatialGate(channels, norm_cfg, deploy), ChannelGate(channels))
        self.k_gate = nn.Sequential(
            SpatialGate(channels, norm_cfg, deploy), ChannelGate(channels))
        self.dwc = nn.Conv2d(channels, channels, 3, padding=1,
                             groups=channels)
        self.proj = nn.Conv2d(channels, channels, 3, padding=1,
                              groups=channels)
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=1)
        return self.drop(self.proj(self.dwc(self.q_gate(q) + self.k_gate(k))
                                   * v))


class CASBlock(nn.Module):
    """x + LocalIntegration(x); x + CATM(BN(x)); x + MLP(BN(x)).

    Deployed (:meth:`switch_to_deploy`, or ``deploy=True``), the two
    BatchNorms are folded into the 1x1 convolutions after them (the token
    mixer's ``qkv`` and the MLP's ``fc1``) and become identities.
    """

    def __init__(self, channels, mlp_ratio=4., drop_path=0., norm_cfg=None,
                 act_cfg=None, deploy=False):
        super().__init__()
        # conv1x1 -> BN -> depthwise conv3x3 -> act -> conv1x1
        self.local_integration = nn.Sequential(
            ConvNormAct(channels, channels, 1, bias=True, norm_cfg=norm_cfg,
                        act_cfg=None, deploy=deploy),
            ConvNormAct(channels, channels, 3, padding=1, groups=channels,
                        bias=True, norm_cfg=None, act_cfg=act_cfg),
            nn.Conv2d(channels, channels, 1))
        self.norm1 = build_norm_layer(norm_cfg, channels)[1]
        self.norm2 = build_norm_layer(norm_cfg, channels)[1]
        self.deploy = deploy and isinstance(self.norm1, _BatchNorm)
        if self.deploy:
            self.norm1 = self.norm2 = nn.Identity()
        self.token_mixer = AdditiveTokenMixer(channels, norm_cfg,
                                              qkv_bias=self.deploy,
                                              deploy=deploy)
        self.mlp = ConvMlp(channels, int(channels * mlp_ratio), act_cfg)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        x = x + self.local_integration(x)
        x = x + self.drop_path(self.token_mixer(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def switch_to_deploy(self):
        """Fold ``norm1`` into the mixer's ``qkv`` and ``norm2`` into the
        MLP's ``fc1`` (eval-mode BatchNorms only)."""
        if self.deploy or not (foldable_norm(self.norm1)
                               and foldable_norm(self.norm2)):
            return
        mixer, mlp = self.token_mixer, self.mlp
        mixer.qkv = fold_norm_into_conv(self.norm1, mixer.qkv)
        mlp.fc1 = fold_norm_into_conv(self.norm2, mlp.fc1)
        self.norm1 = self.norm2 = nn.Identity()
        self.deploy = True


class CASStage(nn.Module):
    """An optional stride-2 conv3x3 + BN downsampling, then the blocks."""
    with_cp = False  # set by the backbone's ``with_cp``

    def __init__(self, in_channels, channels, depth, mlp_ratio, dpr,
                 downsample, norm_cfg, act_cfg, deploy=False):
        super().__init__()
        self.downsample = ConvNormAct(
            in_channels, channels, 3, stride=2, padding=1, bias=True,
            norm_cfg=norm_cfg, act_cfg=None,
            deploy=deploy) if downsample else None
        self.blocks = nn.Sequential(*[
            CASBlock(channels, mlp_ratio, dpr[i], norm_cfg, act_cfg, deploy)
            for i in range(depth)
        ])

    def forward(self, x):
        if self.downsample is not None:
            x = self.downsample(x)
        return run_blocks(self.blocks, x, with_cp=self.with_cp)


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
        with_cp (bool): recompute each block in the backward pass instead
            of keeping its activations (``torch.utils.checkpoint``):
            less memory for more time while training.
        deploy (bool): build the deployed structure (see
            :class:`~mmvit.models.utils.MMViTBackbone`).
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
    checkpoint_converter = staticmethod(convert_backbone)

    def __init__(self,
                 arch='s',
                 in_channels=3,
                 out_indices=(0, 1, 2, 3),
                 frozen_stages=-1,
                 norm_eval=False,
                 drop_path_rate=0.,
                 norm_cfg=dict(type='BN'),
                 act_cfg=dict(type='GELU'),
                 with_cp=False,
                 deploy=False,
                 init_cfg=None):
        settings = parse_arch(arch, self.arch_settings, 'CASViT',
                              ('channels', ))
        depths, channels = settings['depths'], settings['channels']
        super().__init__(len(depths), out_indices, frozen_stages, norm_eval,
                         in_channels, init_cfg, deploy, with_cp)
        self._set_stage_outputs(channels, first_stride=4)

        stem_act = dict(type='ReLU')
        self.stem = nn.Sequential(
            ConvNormAct(in_channels, channels[0] // 2, 3, stride=2,
                        padding=1, bias=True, norm_cfg=norm_cfg,
                        act_cfg=stem_act, deploy=deploy),
            ConvNormAct(channels[0] // 2, channels[0], 3, stride=2,
                        padding=1, bias=True, norm_cfg=norm_cfg,
                        act_cfg=stem_act, deploy=deploy))
        dprs = drop_path_rates(depths, drop_path_rate)
        self.stages = nn.ModuleList([
            CASStage(channels[max(i - 1, 0)], channels[i], depths[i],
                     settings['mlp_ratio'], dprs[i], i > 0, norm_cfg, act_cfg,
                     deploy)
            for i in range(self.num_stages)
        ])
        for i in self.out_indices:
            self.add_module(f'norm{i}',
                            build_norm_layer(norm_cfg, channels[i])[1])
        self._finish_init()
