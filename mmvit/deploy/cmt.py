"""CMT for inference: each IRFFN's BatchNorms folded into its projection."""
from torch import nn

from mmvit.models.backbones.cmt import IRFFN
from . import deploy_rule
from .fold import fold_conv_norm, fold_norm_into_next_conv, foldable_norm


@deploy_rule(IRFFN)
def deploy_irffn(ffn):
    """Fold the projection's BatchNorm into its 1x1 convolution, and the
    BatchNorm before it (``dw_bn``, after the activation) forward into that
    convolution as well (exact: no padding)."""
    fold_conv_norm(ffn.project)
    if foldable_norm(ffn.dw_bn) and 'bn' not in ffn.project._modules:
        ffn.project.conv = fold_norm_into_next_conv(ffn.dw_bn.eval(),
                                                    ffn.project.conv)
        ffn.dw_bn = nn.Identity()
    return ffn
