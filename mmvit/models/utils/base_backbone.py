"""Behaviour shared by every mmvit backbone.

A family implements the layers (by default a ``stem``, ``stages[i]`` and
output norms ``norm{i}``, which is what ``frozen_stages`` freezes; override
``_stem_modules`` / ``_stage_modules(i)`` for another layout), sets
``checkpoint_converter`` when its official checkpoints use other key names
(a function of :mod:`mmvit.converters`) and ends its ``__init__`` with
``self._finish_init()``.
"""
from typing import Callable, Dict, List, Optional

import torch
from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .arch import check_frozen_stages, normalize_out_indices
from .checkpoint import load_pretrained


class MMViTBackbone(BaseModule):
    """Base class: freezing, ``norm_eval``, input checks, pretrained loading.

    Args:
        num_stages (int): number of stages of the family.
        out_indices (int | Sequence[int]): stages whose outputs are returned.
        frozen_stages (int): stages to freeze (-1: none; 0: the stem only
            where a stem exists; ``i``: the stem and stages ``0..i-1``).
        norm_eval (bool): keep every BatchNorm in eval mode while training.
        in_channels (int): channels of the input image.
        deploy (bool): build the inference structure of
            :func:`mmvit.deploy.switch_to_deploy` directly (folded norms;
            eval mode only), e.g. to load a checkpoint saved after
            deployment. The family passes it to its layers' constructors.
        with_cp (bool): activation checkpointing: every stage recomputes
            its blocks in the backward pass (:func:`~mmvit.models.layers.
            run_blocks`) instead of keeping their activations.
    """
    #: ``f(state_dict, model_state_dict) -> state_dict`` mapping official
    #: keys to ours (None: the family has no other layout)
    checkpoint_converter: Optional[Callable] = None

    def __init__(self, num_stages, out_indices, frozen_stages, norm_eval,
                 in_channels=3, init_cfg=None, deploy=False, with_cp=False):
        super().__init__(init_cfg=init_cfg)
        owner = type(self).__name__
        self.num_stages = num_stages
        self.out_indices = normalize_out_indices(out_indices, num_stages,
                                                 owner)
        self.frozen_stages = check_frozen_stages(frozen_stages, num_stages,
                                                 owner)
        self.norm_eval = norm_eval
        self.in_channels = in_channels
        self.deploy = bool(deploy)
        self.with_cp = bool(with_cp)

    def _set_stage_outputs(self, channels, first_stride):
        """Record the stage widths and, for the selected outputs, their
        channels and strides (``first_stride * 2**i`` for stage ``i``)."""
        self.channels = tuple(channels)
        self.out_channels = tuple(channels[i] for i in self.out_indices)
        self.out_strides = tuple(first_stride * 2**i for i in self.out_indices)

    def _finish_init(self):
        """Freeze the requested stages, hand ``with_cp`` to the stages; a
        deployed backbone starts in eval mode."""
        self._freeze_stages()
        for stage in self.stages:
            stage.with_cp = self.with_cp
        if self.deploy:
            self.eval()

    def switch_to_deploy(self):
        """Mark the backbone deployed (its layers deploy themselves, see
        :func:`mmvit.deploy.switch_to_deploy`): eval mode only from now."""
        self.deploy = True

    @property
    def feature_info(self) -> List[dict]:
        """Channels and stride of each output, in ``out_indices`` order."""
        return [dict(num_chs=c, reduction=s, index=i) for c, s, i in zip(
            self.out_channels, self.out_strides, self.out_indices)]

    # -- layout; override for another one ---------------------------------
    def _stem_modules(self) -> List[nn.Module]:
        stem = getattr(self, 'stem', None)
        return [stem] if stem is not None else []

    def _stage_modules(self, index: int) -> List[nn.Module]:
        """Stage ``index`` and its output norm, if it has one."""
        norm = getattr(self, f'norm{index}', None)
        return [self.stages[index]] + ([norm] if norm is not None else [])

    def forward(self, x):
        """Stem (if any), then the stages; the selected outputs pass through
        their output norm ``norm{i}`` where the family has one."""
        self.check_input(x)
        stem = getattr(self, 'stem', None)
        if stem is not None:
            x = stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                norm = getattr(self, f'norm{i}', None)
                out = norm(x) if norm is not None else x
                outs.append(out.contiguous())
        return tuple(outs)

    def convert_checkpoint(self, state_dict: Dict[str, torch.Tensor]):
        """Map a state dict of the official layout to this module's keys."""
        if self.checkpoint_converter is None:
            return state_dict
        return type(self).checkpoint_converter(state_dict, self.state_dict())

    # -- shared behaviour -----------------------------------------------
    def check_input(self, x: torch.Tensor):
        if self.deploy and self.training:
            raise RuntimeError(
                f'{type(self).__name__} is deployed (folded BatchNorms, '
                'no training-only branches) and runs in eval mode only; '
                'build it without deploy (and load its checkpoint) to train '
                'it.')
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'{type(self).__name__} expects an NCHW tensor with '
                f'{self.in_channels} channels, got shape {tuple(x.shape)}')

    def _freeze_stages(self):
        if self.frozen_stages < 0:
            return
        modules = list(self._stem_modules())
        for i in range(self.frozen_stages):
            modules += self._stage_modules(i)
        for module in modules:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode=True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def init_weights(self):
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            load_pretrained(self, cfg['checkpoint'],
                            prefix=cfg.get('prefix', None),
                            sha256=cfg.get('sha256', None))
            self._is_init = True
        else:
            super().init_weights()
