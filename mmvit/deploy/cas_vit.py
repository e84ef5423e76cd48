"""CAS-ViT for inference: pre-norms folded forward into the 1x1
convolutions after them, query and key gates merged, channels-last oneDNN
convolutions with fused activations and residual sums on the fast path."""
import torch
from torch import nn

from mmvit.models.backbones.cas_vit import CASBlock, CASViT
from mmvit.models.layers import ConvStem, in_bands, row_bands, with_halo
from . import deploy_rule, swap_class
from .fold import (fold_conv_norm, fold_norm_into_next_conv, foldable_norm,
                   norm_left, stack_convs)
from .kernels import fast_cpu_inference, fused_conv


class DeployedCASStem(nn.Sequential):
    """The stem's conv(-norm)-ReLU layers; on the fast path channels-last
    with each ReLU a post-op of its convolution."""

    def forward(self, x):
        fast = fast_cpu_inference(x)
        if fast:
            x = x.contiguous(memory_format=torch.channels_last)
        for layer in self:
            x = layer(x) if 'bn' in layer._modules else fused_conv(
                x, layer.conv, getattr(layer, 'act', None), fused=fast)
        return x


class DeployedTokenMixer(nn.Module):
    """CATM with the input norm folded into ``qk`` / ``v`` and both gates
    merged: ``gate_dw`` (the depthwise convs), ``gate_score`` (the spatial
    scores, block-diagonal), ``gate_fc`` (the channel gates, two groups).

    Its three steps (:meth:`spatially_gated`, :meth:`channel_gates`,
    :meth:`mix`) are called by :class:`DeployedCASBlock` for bands of rows.
    """

    @torch.no_grad()
    def __init__(self, mixer, norm):
        super().__init__()
        c = self.channels = mixer.channels
        qkv = fold_norm_into_next_conv(norm, mixer.qkv)
        self.qk = nn.Conv2d(c, 2 * c, 1).to(qkv.weight)
        self.v = nn.Conv2d(c, c, 1).to(qkv.weight)
        for layer, rows in ((self.qk, slice(0, 2 * c)),
                            (self.v, slice(2 * c, 3 * c))):
            layer.weight.copy_(qkv.weight[rows])
            layer.bias.copy_(qkv.bias[rows])
        spatial = [gate[0] for gate in (mixer.q_gate, mixer.k_gate)]
        for gate in spatial:
            fold_conv_norm(gate.dw)
        self.gate_dw = stack_convs([g.dw.conv for g in spatial], 2 * c)
        self.gate_act = spatial[0].dw.act
        self.gate_score = stack_convs([g.score for g in spatial], 1,
                                      block_diagonal=True)
        self.gate_sigmoid = nn.Sigmoid()
        self.gate_fc = stack_convs(
            [gate[1].fc for gate in (mixer.q_gate, mixer.k_gate)], 2)
        self.dwc, self.proj = mixer.dwc, mixer.proj

    def spatially_gated(self, x, start, stop, fused):
        """Rows ``[start, stop)`` of the query and key after their spatial
        gates, from the rows of the block input ``x`` around them."""
        c = self.channels
        part, crop = with_halo(x, start, stop, 1)
        qk = fused_conv(part, self.qk, fused=fused)
        score = fused_conv(
            fused_conv(qk, self.gate_dw, self.gate_act,
                       fused=fused)[:, :, crop],
            self.gate_score, self.gate_sigmoid, fused=fused)
        qk = qk[:, :, crop]
        return qk[:, :c] * score[:, :1], qk[:, c:] * score[:, 1:]

    def channel_gates(self, q, k):
        """``(B, 2C, 1, 1)``: the query's and key's channel gates, both as
        one batched product of their means."""
        c = self.channels
        pooled = torch.stack([q.mean((2, 3)), k.mean((2, 3))], 1)
        gate = torch.sigmoid(torch.einsum(
            'bgi,goi->bgo', pooled, self.gate_fc.weight.view(2, c, c)))
        return gate.reshape(-1, 2 * c, 1, 1)

    def mix(self, x, q, k, gate, start, stop, fused):
        """Rows ``[start, stop)`` of ``x + proj(dwc(q g_q + k g_k) * v)``
        from the rows of ``x``, ``q`` and ``k`` around them."""
        c = self.channels
        q, crop = with_halo(q, start, stop, 2)
        k, _ = with_halo(k, start, stop, 2)
        v, _ = with_halo(x, start, stop, 2)
        mixed = torch.addcmul(q * gate[:, :c], k, gate[:, c:])
        mixed = fused_conv(mixed, self.dwc,
                           other=fused_conv(v, self.v, fused=fused),
                           binary='mul', fused=fused)
        out = fused_conv(mixed, self.proj, fused=fused)[:, :, crop]
        return out.add_(x[:, :, start:stop])


class DeployedCASBlock(nn.Module):
    """x + LI(x); x + CATM'(x); x + MLP'(x) with ``norm1`` / ``norm2``
    folded into the token mixer's projections and the MLP's ``fc1``."""

    @torch.no_grad()
    def __init__(self, block):
        super().__init__()
        self.local_integration = block.local_integration
        fold_conv_norm(self.local_integration[0])
        self.token_mixer = DeployedTokenMixer(block.token_mixer, block.norm1)
        self.mlp = block.mlp
        self.mlp.fc1 = fold_norm_into_next_conv(block.norm2, block.mlp.fc1)

    def integrate(self, x, start, stop, fused):
        """Rows ``[start, stop)`` of ``x + LI(x)``."""
        reduce, depthwise, expand = self.local_integration
        part, crop = with_halo(x, start, stop, 1)
        y = fused_conv(fused_conv(part, reduce.conv, fused=fused),
                       depthwise.conv, getattr(depthwise, 'act', None),
                       fused=fused)[:, :, crop]
        return fused_conv(y, expand, other=x[:, :, start:stop],
                          binary='add', fused=fused)

    def feed_forward(self, x, fused):
        """``x + MLP'(x)``, the hidden map in bands of rows (as ConvMlp)."""
        mlp = self.mlp
        bands = row_bands(x.shape[0], mlp.fc1.out_channels, *x.shape[2:],
                          x.element_size())
        outs = []
        for start, stop in bands:
            part = x[:, :, start:stop] if len(bands) > 1 else x
            y = fused_conv(part, mlp.fc1, mlp.act, fused=fused)
            outs.append(fused_conv(y, mlp.fc2, other=part, binary='add',
                                   fused=fused))
        return outs[0] if len(outs) == 1 else torch.cat(outs, 2)

    def forward(self, x):
        """The block in bands of rows where its maps are large (exact: each
        band reads the rows its 3x3 convolutions need around it), with only
        the block's input and output, ``x + LI(x)`` and the gated query
        and key as whole maps; the channel gates' means come between the
        bands' two passes."""
        fused = fast_cpu_inference(x)
        mixer = self.token_mixer
        bands = row_bands(x.shape[0], x.shape[1], *x.shape[2:],
                          x.element_size())
        (x1, ) = in_bands(lambda a, b: (self.integrate(x, a, b, fused), ),
                          bands)
        q, k = in_bands(
            lambda a, b: mixer.spatially_gated(x1, a, b, fused), bands)
        gate = mixer.channel_gates(q, k)
        (out, ) = in_bands(lambda a, b: (self.feed_forward(
            mixer.mix(x1, q, k, gate, a, b, fused), fused), ), bands)
        return out


def block_foldable(block):
    """Whether every norm of ``block`` is a BatchNorm that folds (a block
    with other norms stays as it is)."""
    return (foldable_norm(block.norm1) and foldable_norm(block.norm2)
            and not norm_left(block.local_integration[0])
            and not any(norm_left(gate[0].dw) for gate in (
                block.token_mixer.q_gate, block.token_mixer.k_gate)))


@deploy_rule(CASBlock)
def deploy_block(block):
    return DeployedCASBlock(block.eval()) if block_foldable(block) else block


@deploy_rule(CASViT)
def deploy_backbone(model):
    if type(model.stem) is ConvStem:
        model.stem = swap_class(model.stem, DeployedCASStem)
    return model
