"""Layers shared by several backbone families."""
from collections import OrderedDict

import torch
from mmcv.cnn import build_activation_layer, build_norm_layer
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

from .utils.fold import fold_conv_norm, foldable_norm


class ConvNormAct(nn.Sequential):
    """Conv2d -> norm -> activation, each optional after the conv.

    The children are named ``conv``, ``bn`` and ``act`` (as in mmcv's
    ``ConvModule``), but a conv bias before the norm is allowed without a
    warning: several official checkpoints have one. ``act_first=True``
    applies the activation before the norm (CMT's order). A BatchNorm right
    after the conv folds into it (:meth:`switch_to_deploy`); ``deploy=True``
    builds that folded structure directly (the conv with a bias, no norm).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1,
                 padding=0, groups=1, bias=True, norm_cfg=dict(type='BN'),
                 act_cfg=None, act_first=False, deploy=False):
        norm = None if norm_cfg is None else build_norm_layer(
            norm_cfg, out_channels)[1]
        folded = deploy and not act_first and isinstance(norm, _BatchNorm)
        layers = OrderedDict(conv=nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding,
            groups=groups, bias=bias or folded))
        norm = None if folded else norm
        act = None if act_cfg is None else build_activation_layer(act_cfg)
        for name, layer in ((('act', act), ('bn', norm)) if act_first else
                            (('bn', norm), ('act', act))):
            if layer is not None:
                layers[name] = layer
        super().__init__(layers)

    def switch_to_deploy(self):
        """Fold a BatchNorm that directly follows the conv into it."""
        names = list(self._modules)
        if len(names) > 1 and names[1] == 'bn' and foldable_norm(self.bn):
            self.conv = fold_conv_norm(self.conv, self.bn)
            del self.bn


def run_blocks(blocks, x, *args, with_cp=False):
    """``x`` through each of ``blocks`` in turn (``block(x, *args)``).

    With ``with_cp``, a block that trains with gradients enabled is run
    under ``torch.utils.checkpoint`` (non-reentrant): its activations are
    recomputed in the backward pass instead of being kept (the RNG state is
    replayed, so drop path draws the same).
    """
    for block in blocks:
        if with_cp and block.training and torch.is_grad_enabled():
            x = checkpoint(block, x, *args, use_reentrant=False)
        else:
            x = block(x, *args)
    return x


class ConvMlp(nn.Module):
    """fc2(act(fc1(x))) with 1x1 convolutions: C -> hidden -> C."""

    def __init__(self, channels, hidden_channels, act_cfg=dict(type='GELU'),
                 drop=0.):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden_channels, 1)
        self.act = build_activation_layer(act_cfg)
        self.fc2 = nn.Conv2d(hidden_channels, channels, 1)
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def transformer_init_cfg(norm_layers=('LayerNorm', )):
    """The init of timm-style vision transformers, as mmengine init_cfg:
    truncated normal (std 0.02) linear layers, fan-out Kaiming normal
    convolutions, unit-weight zero-bias norms; biases zero."""
    return [
        dict(type='TruncNormal', layer='Linear', std=.02, bias=0.),
        dict(type='Kaiming', layer='Conv2d', mode='fan_out', bias=0.),
        dict(type='Constant', layer=list(norm_layers), val=1., bias=0.),
    ]


def drop_path_rates(depths, drop_path_rate):
    """Per-block rates rising linearly from 0 to ``drop_path_rate``.

    Returns one list per stage; block ``j`` of all ``N`` blocks gets
    ``rate * j / (N - 1)``.
    """
    if not 0 <= drop_path_rate < 1:
        raise ValueError(f'drop_path_rate={drop_path_rate!r}: a probability '
                         'in [0, 1) is allowed')
    total = sum(depths)
    rates = [drop_path_rate * j / max(total - 1, 1) for j in range(total)]
    out, start = [], 0
    for depth in depths:
        out.append(rates[start:start + depth])
        start += depth
    return out
