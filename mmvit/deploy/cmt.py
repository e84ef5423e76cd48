"""CMT for inference: each IRFFN's BatchNorms folded into its projection
and its depthwise residual into the depthwise kernel, and on the fast path
each block runs on the channels-last view of its tokens with fewer passes
over them: the GELUs after the stem's convolutions and the IRFFN's
expansion and depthwise convolution post-ops of those convolutions, the
BatchNorms after those GELUs one in-place pass each, and the residual sums
in place or as a post-op of the projection."""
import torch
from torch import nn

from mmvit.models.backbones.cmt import (CMT, IRFFN, CMTBlock,
                                        ResizableRelativePositionBias,
                                        tokens_to_map)
from . import deploy_rule, swap_class
from .fold import fold_conv_norm, fold_norm_into_next_conv, foldable_norm
from .kernels import (fast_cpu_inference, fused_conv, is_capturing_graph,
                      norm_in_place)


class DeployedIRFFN(IRFFN):
    """conv1x1-GELU-BN; dwconv3x3'-GELU-BN; conv1x1-BN, where ``dw'`` has
    the residual ``x + dw(x)`` folded into its kernel's centre."""

    def forward(self, x, size):
        x = self.expand(tokens_to_map(x, size))
        x = self.dw_bn(self.dw_act(self.dw(x)))
        return self.project(x).flatten(2).permute(0, 2, 1)


@deploy_rule(IRFFN)
def deploy_irffn(ffn):
    """Fold the projection's BatchNorm into its 1x1 convolution, and the
    BatchNorm before it (``dw_bn``, after the activation) forward into that
    convolution as well (exact: no padding); add 1 to the centre of each
    depthwise kernel, so that ``dw'(x) = x + dw(x)`` (exact: the centre tap
    reads the position itself, never the padding)."""
    fold_conv_norm(ffn.project)
    if foldable_norm(ffn.dw_bn) and 'bn' not in ffn.project._modules:
        ffn.project.conv = fold_norm_into_next_conv(ffn.dw_bn.eval(),
                                                    ffn.project.conv)
        ffn.dw_bn = nn.Identity()
    kh, kw = ffn.dw.kernel_size
    with torch.no_grad():
        ffn.dw.weight[:, 0, kh // 2, kw // 2] += 1
    return swap_class(ffn, DeployedIRFFN)


class DeployedCMTStem(nn.Sequential):
    """The stem's conv-GELU-BN layers; on the fast path channels-last, each
    GELU a post-op of its convolution and each BN in place on its output."""

    def forward(self, x):
        fast = fast_cpu_inference(x)
        if fast:
            x = x.contiguous(memory_format=torch.channels_last)
        for layer in self:
            x = norm_in_place(fused_conv(x, layer.conv, layer.act,
                                         fused=fast), layer.bn, fused=fast)
        return x


@deploy_rule(CMT)
def deploy_backbone(model):
    if type(model.stem) is nn.Sequential and all(
            list(layer._modules) == ['conv', 'act', 'bn']
            for layer in model.stem):
        model.stem = swap_class(model.stem, DeployedCMTStem)
    return model


class DeployedCMTBlock(CMTBlock):
    """The CMT block for inference. ``(B, H*W, C)`` tokens are the
    channels-last memory of the ``(B, C, H, W)`` map, so on the fast path
    (:func:`~mmvit.deploy.kernels.fast_cpu_inference`) the convolutions run
    on that view without copies: ``x = x + lpu(x)`` and
    ``x = x + attn(norm1(x))`` in place, the IRFFN's expansion with its
    GELU as one oneDNN kernel (its BatchNorm in place on that output),
    ``GELU(dw'(h))`` likewise, and the projection
    with the residual sum as its post-op. Otherwise, and before the IRFFN
    is folded, the block's own maths."""

    def forward(self, x, size, bias):
        ffn = self.ffn
        if not (fast_cpu_inference(x) and x.is_contiguous()
                and 'bn' not in ffn.project._modules):
            return super().forward(x, size, bias)
        fmap = tokens_to_map(x, size)
        x = fused_conv(fmap, self.lpu, other=fmap, binary='add',
                       fused=True).flatten(2).transpose(1, 2)
        x = x.add_(self.attn(self.norm1(x), size, bias))
        expand = ffn.expand
        h = fused_conv(tokens_to_map(self.norm2(x), size), expand.conv,
                       expand.act, fused=True)
        if 'bn' in expand._modules:
            h = norm_in_place(h, expand.bn, fused=True)
        h = ffn.dw_bn(fused_conv(h, ffn.dw, ffn.dw_act, fused=True))
        out = fused_conv(h, ffn.project.conv, other=tokens_to_map(x, size),
                         binary='add', fused=True)
        return out.flatten(2).transpose(1, 2)


@deploy_rule(CMTBlock)
def deploy_block(block):
    return swap_class(block, DeployedCMTBlock)


class DeployedPositionBias(ResizableRelativePositionBias):
    """The position bias, whose grids, while graph mode traces the backbone
    for one input shape (:mod:`mmvit.deploy.graph`), are read as plain ints:
    the bias resized for them then comes from the inference cache and is a
    constant of the graph instead of an interpolation traced into it. Any
    other trace (ONNX export) keeps following the input size."""

    def forward(self, q_size, k_size):
        if is_capturing_graph():
            q_size = tuple(int(s) for s in q_size)
            k_size = tuple(int(s) for s in k_size)
        return super().forward(q_size, k_size)


@deploy_rule(ResizableRelativePositionBias)
def deploy_position_bias(bias):
    return swap_class(bias, DeployedPositionBias)
