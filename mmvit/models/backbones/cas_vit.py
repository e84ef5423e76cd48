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

from mmvit.converters.cas_vit import convert_backbone
from mmvit.registry import MODELS
from ..layers import (ConvMlp, ConvNormAct, ConvStem, drop_path_rates,
                      in_bands, may_band, project_parts,
                      row_bands, run_blocks, with_halo)
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

    def scale(self, x):
        """(B, C, 1, 1): sigmoid(conv1x1(global_avg_pool(x)))."""
        return torch.sigmoid(self.fc(x.mean((2, 3), keepdim=True)))

    def forward(self, x):
        return x * self.scale(x)


class AdditiveTokenMixer(nn.Module):
    """CATM: proj(dwc(G_q(q) + G_k(k)) * v), each gate spatial then channel."""

    def __init__(self, channels, norm_cfg, qkv_bias=False, drop=0.):
        super().__init__()
        self.channels = channels
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

    def gated_parts(self, x, rows):
        """Rows ``rows`` (a slice) of the spatially gated query and key and
        of the value of the (B, C, H, W) map ``x``; each gated row reads
        the rows around it."""
        q, k, v = project_parts(self.qkv, x, 3, dim=1)
        return (self.q_gate[0](q)[:, :, rows], self.k_gate[0](k)[:, :, rows],
                v[:, :, rows])

    def channel_scales(self, q, k):
        """The channel gates' (B, C, 1, 1) scales of the whole spatially
        gated query and key."""
        return self.q_gate[1].scale(q), self.k_gate[1].scale(k)

    def mix(self, q, k, v, scales, rows):
        """Rows ``rows`` of proj(dwc(q s_q + k s_k) * v) from the spatially
        gated q, k, the value v and the channel scales (s_q, s_k); each
        output row reads the two rows on either side of it."""
        mixed = self.dwc(q * scales[0] + k * scales[1])
        return self.drop(self.proj(mixed * v))[:, :, rows]

    def forward(self, x):
        q, k, v = self.gated_parts(x, slice(None))
        return self.mix(q, k, v, self.channel_scales(q, k), slice(None))


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
        # a large map in bands of rows (:func:`row_bands`; a band makes
        # about two tensors of its size at a time), each reading the rows
        # its 3x3 convolutions need around it, in inference where every
        # layer is position-wise or local (:func:`may_band`: eval-mode
        # BatchNorms; no drop path drawn); then only x, x + LI(x), the
        # gated query and key, the value and the output are whole maps,
        # and the channel gates' means are taken between the bands' passes
        bands = row_bands(*x.shape, x.element_size(), temporaries=2)
        if len(bands) > 1 and not self._bands_allowed():
            bands = [(0, x.shape[2])]
        (x1, ) = in_bands(lambda a, b: (self._integrate(x, a, b), ), bands)
        mixer = self.token_mixer
        q, k, v = in_bands(lambda a, b: mixer.gated_parts(
            *self._normed(self.norm1, x1, a, b, 1)), bands)
        scales = mixer.channel_scales(q, k)
        (out, ) = in_bands(
            lambda a, b: (self._mix_and_mlp(x1, q, k, v, scales, a, b), ),
            bands)
        return out

    def _bands_allowed(self):
        """Whether the block runs in bands of rows: :func:`may_band` and
        its drop path draws nothing."""
        return may_band(self) and not (
            self.training and isinstance(self.drop_path, DropPath))

    @staticmethod
    def _normed(norm, x, start, stop, halo):
        """``norm`` of rows ``[start - halo, stop + halo)`` of ``x`` and
        the slice of them that is ``[start, stop)``."""
        window, rows = with_halo(x, start, stop, halo)
        return norm(window), rows

    def _integrate(self, x, start, stop):
        """Rows ``[start, stop)`` of x + LI(x)."""
        window, rows = with_halo(x, start, stop, 1)
        return x[:, :, start:stop] + \
            self.local_integration(window)[:, :, rows]

    def _mix_and_mlp(self, x, q, k, v, scales, start, stop):
        """Rows ``[start, stop)`` of y + MLP(BN(y)), y = x + CATM(BN(x)),
        from the gated q, k and the value v of the token mixer."""
        (q, rows), (k, _), (v, _) = (with_halo(t, start, stop, 2)
                                     for t in (q, k, v))
        x = x[:, :, start:stop] + self.drop_path(
            self.token_mixer.mix(q, k, v, scales, rows))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class CASStage(nn.Module):
    """An optional stride-2 conv3x3 + BN downsampling, then the blocks."""
    with_cp = False  # set by the backbone's ``with_cp``

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
        self.stem = ConvStem(
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
        self._finish_init()
