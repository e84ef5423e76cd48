"""Inference-time model transformations.

``switch_to_deploy(model)`` puts a model in eval mode and, in place,

* folds every BatchNorm that directly follows a convolution inside mmvit's
  conv-norm(-act) layers (``ConvNormAct``) into that convolution
  (EfficientViT: all of its BatchNorms; CAS-ViT and CMT: their conv-BN
  pairs; other BatchNorms after an activation or a residual sum stay);
* calls the ``switch_to_deploy()`` method of every submodule that has one,
  parents before children. CAS-ViT's (:meth:`mmvit.models.CASViT
  .switch_to_deploy`) also folds each block's pre-norm BatchNorms forward
  into the 1x1 convolution that follows them (the query/key/value
  projection, the MLP's ``fc1``), so that only its four output norms stay,
  and merges the query and key gates of each token mixer into grouped
  layers; on CPU, a deployed CAS-ViT runs channels-last, with activations
  and residual sums after dense convolutions computed as oneDNN post-ops
  of those convolutions. EfficientViT's (:meth:`mmvit.models.EfficientViT
  .switch_to_deploy`) makes it run channels-last on CPU, 1x1 convolutions
  as matrix products; CMT's IRFFNs fold their post-activation BatchNorm
  into the 1x1 projection after it;
* removes Castling-ViT's auxiliary softmax branch, so it cannot run even in
  training mode.

Attention biases (CMT's resized position bias, EfficientViT's gathered
offset bias) are computed once per input size in eval mode and cached, with
or without deployment. The outputs do not change beyond float32 rounding
(relative differences below 1e-6 in the tests). A deployed model is for
inference only: BatchNorm statistics are folded away (deployed CAS-ViT
blocks raise an error in training mode), and its state dict has the fused
layout (load checkpoints before switching). The transformation cannot be
undone.
"""
from mmvit.models.backbones.castling_vit import LinearAngularAttention
from mmvit.models.layers import fuse_conv_norms


def switch_to_deploy(model):
    """Deploy ``model`` in place (see the module docstring); returns it."""
    model.eval()
    fuse_conv_norms(model)
    for module in model.modules():
        if isinstance(module, LinearAngularAttention):
            module.aux_softmax = False
    for module in list(model.modules()):
        deploy = getattr(module, 'switch_to_deploy', None)
        if callable(deploy):
            deploy()
    return model
