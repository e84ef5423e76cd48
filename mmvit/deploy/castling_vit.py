"""Castling-ViT for inference: the auxiliary softmax branch removed, each
LayerNorm's scale and shift folded into the linear layer after it, and on
the fast path fewer passes over the token maps (in-place updates, the
MixFFN's depthwise convolution and GELU as one oneDNN kernel)."""
import math

import torch
import torch.nn.functional as F
from torch import nn

from mmvit.models.backbones.castling_vit import (CastlingBlock,
                                                 LinearAngularAttention,
                                                 depthwise_residual,
                                                 inverse_norm)
from mmvit.models.layers import project_parts, row_bands
from . import deploy_rule
from .kernels import fast_cpu_inference, fused_conv


@torch.no_grad()
def fold_layer_norm_into_linear(norm, linear):
    """A copy of ``linear`` computing ``linear(norm(x))`` from the
    normalised ``x`` without the norm's affine: W' = W diag(gamma),
    b' = W beta + b. The norm keeps its eps and loses its affine."""
    folded = nn.Linear(linear.in_features, linear.out_features).to(
        linear.weight)
    bias = linear.bias if linear.bias is not None else torch.zeros_like(
        folded.bias)
    folded.weight.copy_(linear.weight * norm.weight)
    folded.bias.copy_(linear.weight @ norm.bias + bias)
    return folded


class DeployedCastlingBlock(nn.Module):
    """``x + attn(LN(x)); x + MixFFN(LN(x))`` for inference, the norms'
    affine folded into ``qkv`` and ``fc1`` (``norm1`` / ``norm2`` keep only
    their eps), the attention without its auxiliary branch. On the fast
    path (:func:`~mmvit.deploy.kernels.fast_cpu_inference`) the attention
    and the residual sums update their tensors in place and the depthwise
    convolution runs with its GELU as one oneDNN kernel; otherwise the same
    maths in plain operations."""

    @torch.no_grad()
    def __init__(self, block):
        super().__init__()
        attn, ffn = block.attn, block.ffn
        self.eps1, self.eps2 = block.norm1.eps, block.norm2.eps
        self.num_heads, self.head_dims = attn.num_heads, attn.head_dims
        self.res_conv = attn.res_conv
        self.qkv = fold_layer_norm_into_linear(block.norm1, attn.qkv)
        self.dconv, self.proj = attn.dconv, attn.proj
        self.fc1 = fold_layer_norm_into_linear(block.norm2, ffn.fc1)
        self.dwconv, self.act, self.fc2 = ffn.dwconv, ffn.act, ffn.fc2
        self.eval()

    def _attention(self, x, hw_shape, fast):
        batch, length, channels = x.shape
        x = F.layer_norm(x, (self.qkv.in_features, ), eps=self.eps1)
        q, k, v = (t.view(batch, length, self.num_heads,
                          self.head_dims).transpose(1, 2)
                   for t in project_parts(self.qkv, x, 3, dim=-1))
        residual = depthwise_residual(self.dconv, self.res_conv, v,
                                      hw_shape)
        if fast:
            k = k.mul_(inverse_norm(k))
            out = (q @ (k.transpose(-2, -1) @ v)).mul_(
                (2 / math.pi) * inverse_norm(q)).add_(v)
            out = residual.add_(out.mul_(inverse_norm(out)))
        else:
            k = k * inverse_norm(k)
            out = torch.addcmul(v, q @ (k.transpose(-2, -1) @ v),
                                (2 / math.pi) * inverse_norm(q))
            out = torch.addcmul(residual, out, inverse_norm(out))
        return self.proj(out.transpose(1, 2).reshape(batch, length,
                                                     channels))

    def _ffn(self, x, hw_shape, fast):
        batch, length, channels = x.shape
        height, width = hw_shape
        fmap = F.layer_norm(x, (self.fc1.in_features, ), eps=self.eps2).view(
            batch, height, width, channels)
        outs = []
        for start, stop in row_bands(batch, self.fc1.out_features, height,
                                     width, x.element_size()):
            low, high = max(start - 1, 0), min(stop + 1, height)
            y = self.fc1(fmap[:, low:high]).permute(0, 3, 1, 2)
            y = fused_conv(y, self.dwconv, self.act, fused=fast)
            outs.append(self.fc2(y[:, :, start - low:stop - low].permute(
                0, 2, 3, 1)))
        out = outs[0] if len(outs) == 1 else torch.cat(outs, 1)
        return out.reshape(batch, length, channels)

    def forward(self, x, hw_shape):
        fast = fast_cpu_inference(x)
        attn = self._attention(x, hw_shape, fast)
        x = x.add_(attn) if fast else x + attn
        ffn = self._ffn(x, hw_shape, fast)
        return x.add_(ffn) if fast else x + ffn


@deploy_rule(LinearAngularAttention)
def deploy_attention(attn):
    """The branch cannot run afterwards, even in training mode."""
    attn.aux_softmax = False
    return attn


@deploy_rule(CastlingBlock)
def deploy_block(block):
    return DeployedCastlingBlock(block.eval())
