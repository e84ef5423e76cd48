"""Inference-time model transformations.

``switch_to_deploy(model)`` puts a model in eval mode and, in place,

* folds every BatchNorm that directly follows a convolution inside mmvit's
  conv-norm(-act) layers (``ConvNormAct``) into that convolution
  (EfficientViT: all of its BatchNorms; CAS-ViT and CMT: their conv-BN
  pairs; BatchNorms after an activation or a residual sum stay);
* removes Castling-ViT's auxiliary softmax branch, so it cannot run even in
  training mode.

Attention biases (CMT's resized position bias, EfficientViT's gathered
offset bias) are computed once per input size in eval mode and cached, with
or without deployment. The outputs do not change beyond float rounding;
BatchNorm statistics stop being tracked, so a deployed model is for
inference, and its state dict has the fused layout (load checkpoints
before switching).
"""
from mmvit.models.backbones.castling_vit import LinearAngularAttention
from mmvit.models.layers import ConvNormAct


def switch_to_deploy(model):
    """Deploy ``model`` in place (see the module docstring); returns it."""
    model.eval()
    for module in list(model.modules()):
        if isinstance(module, ConvNormAct) and module.fusable:
            module.fuse()
        elif isinstance(module, LinearAngularAttention):
            module.aux_softmax = False
    return model
