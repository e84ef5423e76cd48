"""Cascaded group attention as a block to insert into other networks.

:class:`CGABlock` is EfficientViT's sandwich block (depthwise conv, FFN,
cascaded group attention over windows, depthwise conv, FFN, each residual)
on its own: ``(B, C, H, W) -> (B, C, H, W)`` for any ``H, W``. It is a
subclass of :class:`~mmvit.models.backbones.efficientvit.EfficientViTBlock`
with the same parameters and state-dict keys, so weights move between the
two unchanged. The layers that end a residual branch start with a zero
BatchNorm weight, so a freshly inserted block is the identity and does not
disturb a pretrained host network.

Three ways to use it:

* standalone: ``CGABlock(256)(x)``;
* as an mmcv plugin of mmdet's ResNet / ResNeXt::

      backbone=dict(type='ResNet', ..., plugins=[dict(
          cfg=dict(type='mmvit.CGABlock', num_heads=4),
          stages=(False, False, True, True), position='after_conv2')])

  (the host passes ``in_channels``);
* as a layer of an ultralytics YOLO model YAML (``[-1, 1, CGABlock,
  [256, 4]]``, after :func:`mmvit.yolo.register`).
"""
from torch import nn

from mmvit.models.backbones.efficientvit import EfficientViTBlock
from mmvit.registry import MODELS


@MODELS.register_module()
class CGABlock(EfficientViTBlock):
    """x + dw0(x), x + ffn0(x), x + CGA(x) per window, x + dw1(x),
    x + ffn1(x) on an NCHW map (EfficientViT's block).

    Args:
        in_channels (int): channels of the map (input and output).
        num_heads (int): attention heads; head ``i`` attends over
            ``in_channels / num_heads`` channels plus head ``i-1``'s output.
            Defaults to 4.
        key_dim (int): query/key channels per head. Defaults to 16.
        kernels (Sequence[int], optional): the query depthwise kernel of
            each head. Defaults to 5 for every head (EfficientViT's CGA).
        window_size (int): attention window; larger maps are zero-padded to
            whole windows and attended per window. Defaults to 7.
        drop_path (float): stochastic depth of each residual branch.
            Defaults to 0.
    """
    _abbr_ = 'cga'  # the name mmcv's plugin builder gives the layer

    def __init__(self, in_channels, num_heads=4, key_dim=16, kernels=None,
                 window_size=7, drop_path=0.):
        if kernels is None:
            kernels = [5] * num_heads
        super().__init__(in_channels, num_heads, list(kernels), key_dim,
                         window_size, drop_path)
        self.in_channels = in_channels

    def residual_ends(self):
        """The conv-BN layers that end the five residual branches."""
        return (self.dw0, self.ffn0.pw2, self.mixer.attn.proj, self.dw1,
                self.ffn1.pw2)

    def init_weights(self):
        """Zero the BatchNorm of every residual branch's last layer, so that
        the block is the identity (a host's layer-wise init, e.g. mmdet
        ResNet's constant BatchNorm init, runs before its children's
        ``init_weights``)."""
        for layer in self.residual_ends():
            nn.init.zeros_(layer.bn.weight)
            nn.init.zeros_(layer.bn.bias)
