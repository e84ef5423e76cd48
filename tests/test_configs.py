"""Every config under configs/ parses and builds its model."""
import glob
import os.path as osp

import pytest
import torch

from conftest import ROOT
from mmvit.utils.config import load_config

CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', '*.py')))


def build_model(cfg):
    import mmvit  # noqa: F401
    from mmengine.registry import DefaultScope, init_default_scope
    from mmengine.registry import MODELS
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    scope = DefaultScope.get_current_instance().scope_name
    registry = {'mmdet': 'mmdet.registry', 'mmseg': 'mmseg.registry',
                'mmpretrain': 'mmpretrain.registry'}[scope]
    models = __import__(registry, fromlist=['MODELS']).MODELS
    return models.build(cfg.model)


def test_configs_exist():
    names = {osp.basename(c) for c in CONFIGS}
    for variant in ('xs', 's', 'm', 't'):
        assert f'retinanet_cas_vit_{variant}.py' in names


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_builds(path):
    cfg = load_config(path)
    backbone = cfg.model.backbone
    assert backbone.type.startswith('mmvit.')
    # the documented place of the official checkpoint
    variant = osp.basename(path)[:-3].split('_')[-1]
    assert backbone.init_cfg.checkpoint.startswith('checkpoints/')
    assert backbone.init_cfg.checkpoint.endswith(f'_{variant}.pth')
    model = build_model(cfg).eval()
    # in_channels of the neck are those the backbone produces
    assert list(cfg.model.neck.in_channels) == \
        list(model.backbone.out_channels)
    with torch.no_grad():
        feats = model.extract_feat(torch.rand(1, 3, 96, 128))
    assert len(feats) == cfg.model.neck.num_outs


def test_retinanet_recipe():
    cfg = load_config(osp.join(ROOT, 'configs', 'retinanet_cas_vit_m.py'))
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert cfg.optim_wrapper.optimizer.lr == 2e-4
    assert cfg.optim_wrapper.optimizer.weight_decay == 1e-4
    assert cfg.train_cfg.max_epochs == 12
    assert cfg.param_scheduler[0].end == 500
    assert cfg.param_scheduler[1].milestones == [8, 11]
    assert cfg.auto_scale_lr.base_batch_size == 32
    assert cfg.train_dataloader.batch_size == 4
    assert cfg.train_dataloader.dataset.data_root == 'data/coco/'
    assert cfg.model.backbone.drop_path_rate == 0.1
    assert cfg.model.backbone.norm_eval is True
    assert 'depth' not in cfg.model.backbone  # ResNet keys are gone
    assert cfg.model.neck.add_extra_convs == 'on_input'
