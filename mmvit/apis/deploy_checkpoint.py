"""Deployed checkpoints: a model of a config, deployed, saved in the folded
layout that the same config rebuilds with ``model.backbone.deploy=True``."""
import os
import os.path as osp

import torch

from mmvit.utils.config import build_model, load_config
from mmvit.deploy import switch_to_deploy

DEPLOY_OPTION = 'model.backbone.deploy=True'
#: with the classifier head of the ImageNet configs
HEAD_DEPLOY_OPTION = 'model.head.deploy=True'


def rebuild_options(model):
    """The ``--cfg-options`` that rebuild ``model``'s deployed structure."""
    head = getattr(model, 'head', None)
    return DEPLOY_OPTION + (f' {HEAD_DEPLOY_OPTION}' if hasattr(
        head, 'deploy') else '')


def load_model_checkpoint(model, path):
    """Load a checkpoint of ``model`` (``state_dict`` of a training run or a
    bare state dict) strictly; an error names the keys that do not fit."""
    from mmvit.models.utils.checkpoint import read_checkpoint
    checkpoint = read_checkpoint(path)
    state = checkpoint.get('state_dict', checkpoint)
    state = {k[7:] if k.startswith('module.') else k: v
             for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f'checkpoint {path!r} does not fit the model: missing '
            f'{list(missing)[:10]}, unexpected {list(unexpected)[:10]}')


def deploy_checkpoint(config, checkpoint, out, overlays=()):
    """Build ``config``'s model, load ``checkpoint``, deploy and save the
    result to ``out`` (written to a temporary file, then renamed); returns
    the deployed model."""
    cfg = load_config(config, overlays)
    if 'backbone' in cfg.model:
        cfg.model.backbone.init_cfg = None
    model = build_model(cfg)
    load_model_checkpoint(model, checkpoint)
    switch_to_deploy(model)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    tmp = out + '.tmp'
    torch.save({'state_dict': model.state_dict(),
                'meta': dict(deployed=True, config=osp.basename(config),
                             source=osp.basename(checkpoint),
                             rebuild=rebuild_options(model))}, tmp)
    os.replace(tmp, out)
    return model
