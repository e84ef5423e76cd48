"""Inference-time model transformations.

``switch_to_deploy(model)`` puts a model in eval mode and folds, in place,
every BatchNorm that directly follows a convolution inside mmvit's
conv-norm(-act) layers (``ConvNormAct``) into that convolution. The outputs
do not change beyond float rounding; BatchNorm statistics stop being
tracked, so a deployed model is for inference (and its state dict has the
fused layout: load checkpoints before switching).
"""
from mmvit.models.layers import ConvNormAct


def switch_to_deploy(model):
    """Fuse ``model``'s Conv+BN pairs in place; returns ``model``."""
    model.eval()
    for module in list(model.modules()):
        if isinstance(module, ConvNormAct) and module.fusable:
            module.fuse()
    return model
