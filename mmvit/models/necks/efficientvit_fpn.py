"""An FPN that also produces levels finer than the backbone's finest.

EfficientViT's stages are at strides 16, 32 and 64, while RetinaNet wants
strides 8-128 and Mask R-CNN, Semantic FPN and UperNet want strides from 4.
As in the official downstream code, the extra fine levels are made by
stride-2 transposed convolutions (kernel 2) chained from the stride-16
lateral after the top-down pathway, each followed by a 3x3 output conv.
"""
import importlib.util

import torch.nn.functional as F
from mmcv.cnn import ConvModule
from torch import nn

# mmdet's FPN where mmdet is installed, else mmseg's (the same layers and
# arguments), so that either library alone can build this neck
if importlib.util.find_spec('mmdet') is not None:
    from mmdet.models.necks import FPN
else:
    from mmseg.models.necks import FPN

from mmvit.registry import MODELS


@MODELS.register_module()
class EfficientViTFPN(FPN):
    """mmdet's FPN plus ``num_extra_trans_convs`` upsampled levels.

    Args:
        in_channels (list[int]): channels of the backbone outputs.
        out_channels (int): channels of every output level.
        num_outs (int): output levels in total, the transposed ones
            included (e.g. 5 for RetinaNet: 1 transposed + 3 backbone + 1
            extra conv; 5 for Mask R-CNN: 2 transposed + 3 backbone).
        num_extra_trans_convs (int): levels added below the finest backbone
            level, finest first in the output. Defaults to 0 (a plain FPN).
        **kwargs: the other arguments of mmdet's ``FPN`` (``start_level``,
            ``add_extra_convs``, ``norm_cfg`` ...). ``norm_cfg`` also applies
            to the transposed convolutions unless ``no_norm_on_lateral``.
    """

    def __init__(self, in_channels, out_channels, num_outs,
                 num_extra_trans_convs=0, **kwargs):
        if not isinstance(num_extra_trans_convs, int) or \
                not 0 <= num_extra_trans_convs < num_outs:
            raise ValueError(
                'EfficientViTFPN: num_extra_trans_convs must be an int in '
                f'0..{num_outs - 1} (num_outs={num_outs}), got '
                f'{num_extra_trans_convs!r}')
        kwargs.setdefault('init_cfg', dict(type='Xavier', layer='Conv2d',
                                           distribution='uniform'))
        super().__init__(in_channels, out_channels,
                         num_outs - num_extra_trans_convs, **kwargs)
        self.num_extra_trans_convs = num_extra_trans_convs
        conv_cfg, norm_cfg, act_cfg = (kwargs.get('conv_cfg'),
                                       kwargs.get('norm_cfg'),
                                       kwargs.get('act_cfg'))
        trans_norm = None if kwargs.get('no_norm_on_lateral') else norm_cfg
        # ConvModule initialises its (transposed) conv with fan-out Kaiming;
        # the Xavier init_cfg covers Conv2d layers only.
        self.trans_convs = nn.ModuleList([
            ConvModule(out_channels, out_channels, 2, stride=2,
                       conv_cfg=dict(type='deconv'), norm_cfg=trans_norm,
                       act_cfg=act_cfg, inplace=False)
            for _ in range(num_extra_trans_convs)
        ])
        self.trans_fpn_convs = nn.ModuleList([
            ConvModule(out_channels, out_channels, 3, padding=1,
                       conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg,
                       inplace=False) for _ in range(num_extra_trans_convs)
        ])

    def _extra_levels(self, inputs, laterals, outs):
        """Levels above the coarsest input, as mmdet's FPN makes them."""
        used = len(laterals)
        if self.num_outs <= used:
            return
        if not self.add_extra_convs:
            for _ in range(self.num_outs - used):
                outs.append(F.max_pool2d(outs[-1], 1, stride=2))
            return
        source = {
            'on_input': lambda: inputs[self.backbone_end_level - 1],
            'on_lateral': lambda: laterals[-1],
            'on_output': lambda: outs[-1],
        }[self.add_extra_convs]()
        outs.append(self.fpn_convs[used](source))
        for i in range(used + 1, self.num_outs):
            x = F.relu(outs[-1]) if self.relu_before_extra_convs else outs[-1]
            outs.append(self.fpn_convs[i](x))

    def forward(self, inputs):
        if len(inputs) != len(self.in_channels):
            raise ValueError(f'EfficientViTFPN: got {len(inputs)} inputs, '
                             f'configured for {len(self.in_channels)}')
        laterals = [
            conv(inputs[i + self.start_level])
            for i, conv in enumerate(self.lateral_convs)
        ]
        for i in range(len(laterals) - 1, 0, -1):
            if 'scale_factor' in self.upsample_cfg:
                up = F.interpolate(laterals[i], **self.upsample_cfg)
            else:
                up = F.interpolate(laterals[i], size=laterals[i - 1].shape[2:],
                                   **self.upsample_cfg)
            laterals[i - 1] = laterals[i - 1] + up
        outs = [conv(lat) for conv, lat in zip(self.fpn_convs, laterals)]
        self._extra_levels(inputs, laterals, outs)
        fine, x = [], laterals[0]
        for trans, conv in zip(self.trans_convs, self.trans_fpn_convs):
            x = trans(x)
            fine.insert(0, conv(x))
        return tuple(fine + outs)
