"""CAS-ViT for inference: pre-norms folded forward into the 1x1
convolutions after them, query and key gates merged, channels-last oneDNN
convolutions with fused activations and residual sums on the fast path."""
import torch
from torch import nn

from mmvit.models.backbones.cas_vit import CASBlock, CASViT
from mmvit.models.layers import row_bands
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

    ``forward(x, residual)`` returns ``proj(...) + residual`` (the sum a
    post-op of ``proj`` on the fast path).
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

    def forward(self, x, residual):
        fused = fast_cpu_inference(x)
        c = self.channels
        qk = fused_conv(x, self.qk, fused=fused)
        v = fused_conv(x, self.v, fused=fused)
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
        return fused_conv(mixed, self.proj, other=residual, binary='add',
                          fused=fused)


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

    def forward(self, x):
        fused = fast_cpu_inference(x)
        reduce, depthwise, expand = self.local_integration
        y = fused_conv(fused_conv(x, reduce.conv, fused=fused),
                       depthwise.conv, getattr(depthwise, 'act', None),
                       fused=fused)
        x = fused_conv(y, expand, other=x, binary='add', fused=fused)
        x = self.token_mixer(x, x)
        mlp = self.mlp
        bands = row_bands(x.shape[0], mlp.fc1.out_channels, *x.shape[2:],
                          x.element_size())
        outs = []
        for start, stop in bands:  # as ConvMlp: the hidden map in bands
            part = x[:, :, start:stop] if len(bands) > 1 else x
            y = fused_conv(part, mlp.fc1, mlp.act, fused=fused)
            outs.append(fused_conv(y, mlp.fc2, other=part, binary='add',
                                   fused=fused))
        return outs[0] if len(outs) == 1 else torch.cat(outs, 2)


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
    if type(model.stem) is nn.Sequential:
        model.stem = swap_class(model.stem, DeployedCASStem)
    return model
