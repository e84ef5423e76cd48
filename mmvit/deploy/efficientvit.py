"""EfficientViT for inference: every BatchNorm folded (each follows a
convolution) and the stages run channels-last, as ``(B, H, W, C)`` tokens:
1x1 convolutions as matrix products, the other convolutions on the
channels-last view (oneDNN with the ReLU fused on the fast path), residual
sums in place, each head's scaled logits plus offset bias in one
``baddbmm``. Each inference module subclasses the layer it replaces and
only changes its forward (the state dict keeps its keys)."""
import torch
from torch import nn

from mmvit.models.backbones.efficientvit import (CascadedGroupAttention,
                                                 ConvFFN, EfficientViT,
                                                 EfficientViTBlock,
                                                 EfficientViTStage, FFN,
                                                 LocalWindowAttention,
                                                 PatchMerging, SqueezeExcite,
                                                 attend_per_window)
from mmvit.models.plugins import CGABlock
from . import deploy_rule, swap_class
from .kernels import conv_nhwc, fast_cpu_inference, fused_conv, pointwise_nhwc

_RELU = nn.ReLU()  # a post-op of fused convolutions


class DeployedStem(nn.Sequential):
    """Conv-ReLU-...-conv on NCHW maps (channels-last memory on the fast
    path, each ReLU a post-op of its convolution)."""

    def forward(self, x):
        fast = fast_cpu_inference(x)
        if fast:
            x = x.contiguous(memory_format=torch.channels_last)
        for i in range(0, len(self), 2):
            act = self[i + 1] if i + 1 < len(self) else None
            x = fused_conv(x, self[i].conv, act, fused=fast)
        return x


class DeployedFFN(FFN):
    """``x + FFN(x)`` on ``(B, H, W, C)`` tokens."""

    def forward(self, x):
        y = pointwise_nhwc(pointwise_nhwc(x, self.pw1.conv, relu=True),
                           self.pw2.conv)
        return y.add_(x)


class DeployedSqueezeExcite(SqueezeExcite):
    """Squeeze-excite on ``(B, H, W, C)`` tokens."""

    def forward(self, x):
        scale = pointwise_nhwc(x.mean((1, 2)), self.reduce, relu=True)
        scale = pointwise_nhwc(scale, self.expand).sigmoid_()
        return x * scale[:, None, None, :]


class DeployedCascadedGroupAttention(CascadedGroupAttention):
    """CGA on ``(B, H, W, C)`` tokens of one window."""

    def forward(self, x):
        fast = fast_cpu_inference(x)
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
            q = conv_nhwc(q, dw.conv, fused=fast).reshape(batch, tokens, -1)
            attn = torch.baddbmm(bias[i], q,
                                 k.reshape(batch, tokens, -1).transpose(1, 2),
                                 alpha=self.scale).softmax(dim=-1)
            feat = torch.bmm(attn, v.reshape(batch, tokens, -1)).view(
                batch, height, width, -1)
            outs.append(feat)
        return pointwise_nhwc(torch.cat(outs, -1).relu_(), self.proj.conv)


class DeployedLocalWindowAttention(LocalWindowAttention):
    """Window attention on ``(B, H, W, C)`` tokens."""

    def forward(self, x):
        return attend_per_window(x, self.window_size, self.attn)


def sandwich_nhwc(block, x):
    """The deployed sandwich ``block`` on ``(B, H, W, C)`` tokens ``x``
    (residuals in place)."""
    fast = fast_cpu_inference(x)
    x = conv_nhwc(x, block.dw0.conv, fused=fast).add_(x)
    x = block.ffn0(x)
    x = block.mixer(x).add_(x)
    x = conv_nhwc(x, block.dw1.conv, fused=fast).add_(x)
    return block.ffn1(x)


class DeployedEfficientViTBlock(EfficientViTBlock):
    """The sandwich block on ``(B, H, W, C)`` tokens."""

    def forward(self, x):
        return sandwich_nhwc(self, x)


class DeployedCGABlock(CGABlock):
    """The plug-in block on an NCHW map, ``(B, H, W, C)`` tokens inside."""

    def forward(self, x):
        tokens = x.permute(0, 2, 3, 1).contiguous()
        return sandwich_nhwc(self, tokens).permute(0, 3, 1, 2)


class DeployedConvFFN(ConvFFN):
    """``x + dw(x)``, then ``x + FFN(x)`` on ``(B, H, W, C)`` tokens."""

    def forward(self, x):
        fast = fast_cpu_inference(x)
        return self.ffn(conv_nhwc(x, self.dw.conv, fused=fast).add_(x))


class DeployedPatchMerging(PatchMerging):
    """Patch merging on ``(B, H, W, C)`` tokens."""

    def forward(self, x):
        fast = fast_cpu_inference(x)
        x = pointwise_nhwc(x, self.conv1.conv, relu=True)
        x = conv_nhwc(x, self.conv2.conv, _RELU, fused=fast)
        return pointwise_nhwc(self.se(x), self.conv3.conv)


class DeployedEfficientViTStage(EfficientViTStage):
    """NCHW in and out, ``(B, H, W, C)`` tokens inside (the output is a
    channels-last view, which the next stage reads without a copy)."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1).contiguous()
        if self.downsample is not None:
            x = self.downsample(x)
        return self.blocks(x).permute(0, 3, 1, 2)


_SWAPS = {
    FFN: DeployedFFN,
    SqueezeExcite: DeployedSqueezeExcite,
    CascadedGroupAttention: DeployedCascadedGroupAttention,
    LocalWindowAttention: DeployedLocalWindowAttention,
    EfficientViTBlock: DeployedEfficientViTBlock,
    CGABlock: DeployedCGABlock,
    ConvFFN: DeployedConvFFN,
    PatchMerging: DeployedPatchMerging,
    EfficientViTStage: DeployedEfficientViTStage,
}


@deploy_rule(*_SWAPS)
def deploy_layer(module):
    """The inference subclass of ``module``'s layer (same parameters)."""
    return swap_class(module, _SWAPS[type(module)])


@deploy_rule(EfficientViT)
def deploy_backbone(model):
    if type(model.stem) is nn.Sequential:
        model.stem = swap_class(model.stem, DeployedStem)
    return model
