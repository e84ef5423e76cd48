"""Global pooling neck of the image classifiers (optionally after a 1x1
convolution block, as in CMT's classifier)."""
from mmengine.model import BaseModule
from torch import nn

from mmvit.registry import MODELS
from ..layers import ConvNormAct


@MODELS.register_module()
class PoolNeck(BaseModule):
    """[1x1 conv -> norm -> activation] -> global average pool -> flatten.

    Args:
        in_channels (int): channels of the input map (needed with a
            projection).
        out_channels (int, optional): channels of the 1x1 projection;
            ``None`` (default) pools the input directly.
        norm_cfg (dict): norm of the projection. Defaults to BN.
        act_cfg (dict): activation of the projection. Defaults to Swish.
        conv_bias (bool): the projection's conv has a bias (CMT's does).
        pool (str): ``'adaptive'`` (``adaptive_avg_pool2d``, as CMT and
            EfficientViT pool) or ``'mean'`` (mean over the flattened map,
            as CAS-ViT pools). Both are the average; the choice reproduces
            each official network's float rounding.

    Takes the tuple of backbone outputs and pools each map: ``(B, C, H, W)``
    -> ``(B, C)``.
    """

    def __init__(self, in_channels=None, out_channels=None,
                 norm_cfg=dict(type='BN'), act_cfg=dict(type='Swish'),
                 conv_bias=True, pool='adaptive', init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if pool not in ('adaptive', 'mean'):
            raise ValueError(f"PoolNeck: pool must be 'adaptive' or 'mean', "
                             f'got {pool!r}')
        if out_channels is not None and in_channels is None:
            raise ValueError('PoolNeck: a projection (out_channels) needs '
                             'in_channels')
        self.pool = pool
        self.proj = None if out_channels is None else ConvNormAct(
            in_channels, out_channels, 1, bias=conv_bias, norm_cfg=norm_cfg,
            act_cfg=act_cfg)
        self._pool = nn.AdaptiveAvgPool2d(1)

    def _reduce(self, x):
        if self.proj is not None:
            x = self.proj(x)
        if self.pool == 'mean':
            return x.flatten(2).mean(-1)
        return self._pool(x).flatten(1)

    def forward(self, inputs):
        if isinstance(inputs, (tuple, list)):
            return tuple(self._reduce(x) for x in inputs)
        return self._reduce(inputs)
