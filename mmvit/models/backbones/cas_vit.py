"""CAS-ViT: Convolutional Additive Self-attention Vision Transformers.

A four-stage pyramid of BatchNorm/convolution blocks whose token mixer (CATM)
replaces the query-key product by the sum of a spatially and a channel gated
query and key, so its cost is linear in the number of tokens. Outputs after
each stage pass through their own BatchNorm, at strides 4, 8, 16 and 32.

For inference, :meth:`CASViT.switch_to_deploy` (what
:func:`mmvit.deploy.switch_to_deploy` calls) folds the blocks' pre-norm
BatchNorms forward into the 1x1 convolutions after them, merges the query
and key gates into grouped layers and, on CPU, runs the blocks in the
channels-last layout with oneDNN's fused convolution post-ops; see there.

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
from ..layers import (ConvMlp, ConvNormAct, drop_path_rates,
                      fast_cpu_inference, fold_norm_into_next_conv,
                      foldable_norm, fuse_conv_norms, fused_conv)
from ..utils import MMViTBackbone, parse_arch


# -- inference-only helpers (deployed blocks) -------------------------------
def _fusable_layer(layer):
    """Whether the conv-norm(-act) ``layer`` has no norm left after
    :meth:`ConvNormAct.fuse` (none, a foldable one or one folded)."""
    return 'bn' not in layer._modules or foldable_norm(layer.bn)


def _stack_convs(convs, groups, block_diagonal=False):
    """One convolution doing the work of ``convs`` (equal shapes, each
    mapping its own slice of the input channels to its own slice of the
    output channels): grouped, or dense with zero off-diagonal blocks."""
    first = convs[0]
    in_channels = first.in_channels * len(convs)
    out_channels = first.out_channels * len(convs)
    has_bias = first.bias is not None
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
                        groups=groups, bias=has_bias).to(weight)
    with torch.no_grad():
        stacked.weight.copy_(weight)
        if has_bias:
            stacked.bias.copy_(torch.cat([c.bias for c in convs]))
    return stacked


def _check_inference(module):
    if module.training:
        raise RuntimeError(
            f'{type(module).__name__} was switched to deploy mode (folded '
            'BatchNorms, merged gates) and runs in eval mode only; build '
            'the model anew (and load its checkpoint) to train it.')


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
    """CATM: proj(dwc(G_q(q) + G_k(k)) * v), each gate spatial then channel.

    After :meth:`switch_to_deploy` the query and key projections are one
    1x1 convolution ``qk`` (and ``v`` another) and the two gates run as
    one: ``gate_dw`` (both depthwise convolutions), ``gate_score`` (both
    spatial scores, block-diagonal) and ``gate_fc`` (both channel gates,
    two groups).
    """

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
        self.deployed = False

    def forward(self, x):
        if self.deployed:
            return self.forward_deployed(x)
        q, k, v = self.qkv(x).chunk(3, dim=1)
        mixed = self.dwc(self.q_gate(q) + self.k_gate(k))
        return self.drop(self.proj(mixed * v))

    def forward_deployed(self, x, residual=None):
        """The deployed forward, plus ``residual`` if given (added by the
        last convolution's post-op on the fused path)."""
        _check_inference(self)
        fused = fast_cpu_inference(x)
        c = self.channels
        qk, v = self.qk(x), self.v(x)
        score = fused_conv(
            fused_conv(qk, self.gate_dw, self.gate_act, fused=fused),
            self.gate_score, self.gate_sigmoid, fused=fused)
        q = qk[:, :c] * score[:, :1]
        k = qk[:, c:] * score[:, 1:]
        # both channel gates as one batched product: (B, 2, C) -> (B, 2, C)
        pooled = torch.stack([q.mean((2, 3)), k.mean((2, 3))], 1)
        gate = torch.sigmoid(torch.einsum(
            'bgi,goi->bgo', pooled, self.gate_fc.weight.view(2, c, c)))
        gate = gate.reshape(-1, 2 * c, 1, 1)
        mixed = torch.addcmul(q * gate[:, :c], k, gate[:, c:])
        mixed = fused_conv(mixed, self.dwc, other=v, binary='mul',
                           fused=fused)
        if residual is None:
            return self.proj(mixed)
        return fused_conv(mixed, self.proj, other=residual, binary='add',
                          fused=fused)

    def can_deploy(self):
        """Deploy mode needs BatchNorms in the gates (other norms cannot
        be folded; such a module stays as it is)."""
        return self.deployed or all(
            _fusable_layer(gate[0].dw) for gate in (self.q_gate, self.k_gate))

    @torch.no_grad()
    def switch_to_deploy(self, norm=None):
        """Merge the layers for inference, in place (see the class
        docstring); ``norm``, an eval-mode BatchNorm applied to the input
        before, is folded into the projections. Irreversible; the module
        then runs in eval mode only. A no-op where the gates' norms are
        not BatchNorms."""
        if self.deployed:
            assert norm is None, 'already deployed without that norm'
            return self
        if not self.can_deploy():
            return self
        qkv = self.qkv if norm is None else fold_norm_into_next_conv(
            norm, self.qkv)
        c = self.channels
        self.qk = nn.Conv2d(c, 2 * c, 1, bias=qkv.bias is not None).to(
            qkv.weight)
        self.v = nn.Conv2d(c, c, 1, bias=qkv.bias is not None).to(
            qkv.weight)
        for layer, rows in ((self.qk, slice(0, 2 * c)),
                            (self.v, slice(2 * c, 3 * c))):
            layer.weight.copy_(qkv.weight[rows])
            if qkv.bias is not None:
                layer.bias.copy_(qkv.bias[rows])
        spatial = [gate[0] for gate in (self.q_gate, self.k_gate)]
        for gate in spatial:
            gate.dw.fuse()
        self.gate_dw = _stack_convs([g.dw.conv for g in spatial], 2 * c)
        self.gate_act = spatial[0].dw.act
        self.gate_score = _stack_convs([g.score for g in spatial], 1,
                                       block_diagonal=True)
        self.gate_sigmoid = nn.Sigmoid()
        self.gate_fc = _stack_convs(
            [gate[1].fc for gate in (self.q_gate, self.k_gate)], 2)
        del self.qkv, self.q_gate, self.k_gate
        self.deployed = True
        return self


class CASBlock(nn.Module):
    """x + LocalIntegration(x); x + CATM(BN(x)); x + MLP(BN(x)).

    :meth:`switch_to_deploy` folds ``norm1`` and ``norm2`` forward into the
    1x1 convolutions that follow them (the token mixer's query/key/value
    projection, the MLP's ``fc1``) and merges the token mixer's gates.
    """

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
        self.deployed = False

    def forward(self, x):
        if self.deployed:
            return self.forward_deployed(x)
        x = x + self.local_integration(x)
        x = x + self.drop_path(self.token_mixer(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def forward_deployed(self, x):
        """Eval-mode forward of a deployed block: the same maths with the
        norms folded. On CPU (see
        :func:`~mmvit.models.layers.fast_cpu_inference`) the activations
        and residual sums after dense convolutions run as oneDNN post-ops
        of those convolutions, the gating product and residual sum after
        the depthwise ones in place on their outputs."""
        _check_inference(self)
        fused = fast_cpu_inference(x)
        reduce, depthwise, expand = self.local_integration
        y = fused_conv(fused_conv(x, reduce.conv, fused=fused),
                       depthwise.conv, getattr(depthwise, 'act', None),
                       fused=fused)
        x = fused_conv(y, expand, other=x, binary='add', fused=fused)
        x = self.token_mixer.forward_deployed(x, residual=x)
        y = fused_conv(x, self.mlp.fc1, self.mlp.act, fused=fused)
        return fused_conv(y, self.mlp.fc2, other=x, binary='add',
                          fused=fused)

    @torch.no_grad()
    def switch_to_deploy(self):
        """Fold the BatchNorms into the convolutions for inference, in
        place: ``local_integration``'s conv-BN pair (backward) and ``norm1``
        / ``norm2`` (forward, into the 1x1 convolution after each); merge
        the token mixer's gates. Irreversible: the block then runs in eval
        mode only, with another state dict layout (load checkpoints
        before). A no-op for blocks with norms other than BatchNorm (with
        running statistics), which cannot be folded."""
        if self.deployed:
            return self
        if not (foldable_norm(self.norm1) and foldable_norm(self.norm2)
                and _fusable_layer(self.local_integration[0])
                and self.token_mixer.can_deploy()):
            return self
        self.eval()
        self.local_integration[0].fuse()
        self.token_mixer.switch_to_deploy(self.norm1)
        self.mlp.fc1 = fold_norm_into_next_conv(self.norm2, self.mlp.fc1)
        del self.norm1, self.norm2
        self.deployed = True
        return self


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
        self.deployed = False
        self._freeze_stages()

    def forward(self, x):
        """Stage outputs (see the class docstring). A deployed model runs
        a float32 CPU input in eager inference (see
        :func:`~mmvit.models.layers.fast_cpu_inference`) in the channels-last
        layout, oneDNN's native one, with the stem's ReLUs fused into its
        convolutions, and returns contiguous outputs.
        """
        if not (self.deployed and fast_cpu_inference(x)):
            return super().forward(x)
        self.check_input(x)
        x = x.contiguous(memory_format=torch.channels_last)
        for layer in self.stem:
            x = layer(x) if 'bn' in layer._modules else fused_conv(
                x, layer.conv, getattr(layer, 'act', None), fused=True)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(getattr(self, f'norm{i}')(x).contiguous())
        return tuple(outs)

    @torch.no_grad()
    def switch_to_deploy(self):
        """Prepare the model for inference, in place; returns it.

        Folds every BatchNorm that a convolution precedes or follows into it:
        backward into the convolution before it in the stem, the downsamplings
        and the local integration / gate layers; forward into the 1x1
        convolution after it for the blocks' pre-norms ``norm1`` and ``norm2``.
        Merges each token mixer's query and key gates into grouped layers. Only
        the output norms ``norm{i}`` stay (blocks with other norms than
        BatchNorm stay as they are). On CPU the deployed forward then runs
        channels-last, the activations and residual sums after dense
        convolutions as oneDNN post-ops of those convolutions (the same maths;
        float32 rounding). Other devices and dtypes, autograd, autocast,
        tracing, compiling and export take the plain path: the same layers,
        unfused.

        Irreversible: the model is put in eval mode and refuses to run in
        training mode (its BatchNorm statistics are folded away), and its
        state dict has the fused layout: load checkpoints before.
        """
        self.eval()
        fuse_conv_norms(self)
        for module in list(self.modules()):
            if isinstance(module, CASBlock):
                module.switch_to_deploy()
        self.deployed = True
        return self

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
