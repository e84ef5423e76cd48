"""Every dense-prediction config under configs/ parses, builds its model
and runs forward (the ImageNet classifiers: test_classification.py)."""
import glob
import os.path as osp

import pytest
import torch

from conftest import ROOT
from mmvit.apis.model_index import model_info
from mmvit.families import HEADS, families
from mmvit.utils.config import load_config

FAMILIES = {f.key: f.variants for f in families().values()}
CONFIGS = sorted(
    p for family in FAMILIES
    for p in glob.glob(osp.join(ROOT, 'configs', family, '*.py'))
    if osp.basename(p).startswith(HEADS))


def test_old_flat_names_resolve():
    """configs/<name>.py (before configs/<family>/) still names the same
    config, for one release."""
    stubs = sorted(glob.glob(osp.join(ROOT, 'configs', '*.py')))
    assert len(stubs) == sum(len(glob.glob(osp.join(
        ROOT, 'configs', family, '*.py'))) for family in FAMILIES)
    for stub in stubs:
        name = osp.basename(stub)
        family = next(f for f in FAMILIES if f'_{f}_' in name)
        assert f"_base_ = ['./{family}/{name}']" in open(stub).read(), stub
    for name in ('retinanet_cas_vit_s.py', 'imagenet_cmt_ti.py'):
        old = load_config(osp.join(ROOT, 'configs', name))
        family = 'cas_vit' if 'cas_vit' in name else 'cmt'
        new = load_config(osp.join(ROOT, 'configs', family, name))
        assert old.model == new.model and old.train_cfg == new.train_cfg


def build_model(cfg):
    import mmvit  # noqa: F401
    from mmengine.registry import init_default_scope
    scope = cfg.get('default_scope', 'mmdet')
    init_default_scope(scope)
    registry = __import__(f'{scope}.registry', fromlist=['MODELS'])
    return registry.MODELS.build(cfg.model)


def test_every_head_and_variant_has_a_config():
    names = {osp.basename(c) for c in CONFIGS}
    for family, variants in FAMILIES.items():
        for head in HEADS:
            for variant in variants:
                assert f'{head}_{family}_{variant}.py' in names


def _forward(cfg, model, size=(96, 128)):
    inputs = torch.rand(1, 3, *size)
    if cfg.default_scope == 'mmdet':
        from mmdet.structures import DetDataSample
        sample = DetDataSample(metainfo=dict(
            img_shape=size, ori_shape=size, pad_shape=size,
            batch_input_shape=size, scale_factor=(1., 1.)))
        return model._forward(inputs, [sample])
    return model._forward(inputs)


def _flatten(outputs):
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    if isinstance(outputs, (list, tuple)):
        return [t for o in outputs for t in _flatten(o)]
    return []


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_builds_and_runs(path):
    cfg = load_config(path)
    backbone = cfg.model.backbone
    assert backbone.type.startswith('mmvit.')
    assert 'depth' not in backbone  # no stray ResNet keys
    # the official file's URL from the model index, else its documented
    # local place
    name = osp.basename(path)[:-3]
    head = next(h for h in HEADS if name.startswith(h + '_'))
    family_variant = name[len(head) + 1:]
    url = model_info(family_variant)['weights']
    assert backbone.init_cfg.checkpoint == (
        url or f'checkpoints/{family_variant}.pth')
    model = build_model(cfg).eval()
    # what the backbone produces is what the neck or head expects
    if 'neck' in cfg.model:
        assert list(cfg.model.neck.in_channels) == \
            list(model.backbone.out_channels)
    else:
        assert list(cfg.model.decode_head.in_channels) == \
            list(model.backbone.out_channels)
        aux = cfg.model.auxiliary_head
        assert aux.in_channels == model.backbone.out_channels[aux.in_index]
    with torch.no_grad():
        outputs = _flatten(_forward(cfg, model))
    assert outputs and all(torch.isfinite(t).all() for t in outputs)


def test_retinanet_recipe():
    cfg = load_config(osp.join(ROOT, 'configs', 'cas_vit', 'retinanet_cas_vit_m.py'))
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
    assert cfg.model.neck.add_extra_convs == 'on_input'


def test_segmentation_recipes():
    fpn = load_config(osp.join(ROOT, 'configs', 'cas_vit', 'semantic_fpn_cas_vit_s.py'))
    assert fpn.optim_wrapper.optimizer.lr == 2e-4
    assert fpn.param_scheduler[0].power == 0.9
    assert fpn.param_scheduler[0].end == fpn.train_cfg.max_iters == 40000
    assert fpn.model.decode_head.num_classes == 150
    assert fpn.model.decode_head.channels == 128
    assert fpn.model.neck.num_outs == 4
    assert fpn.train_dataloader.dataset.data_root == \
        'data/ade/ADEChallengeData2016'
    uper = load_config(osp.join(ROOT, 'configs', 'cas_vit', 'upernet_cas_vit_t.py'))
    assert uper.optim_wrapper.optimizer.lr == 6e-5
    assert uper.optim_wrapper.optimizer.weight_decay == 0.01
    assert uper.optim_wrapper.paramwise_cfg.norm_decay_mult == 0.
    assert [s.type for s in uper.param_scheduler] == ['LinearLR', 'PolyLR']
    assert uper.param_scheduler[0].end == 1500
    assert uper.param_scheduler[1].power == 1.0
    assert uper.train_cfg.max_iters == 160000
    assert uper.model.auxiliary_head.in_index == 2
    assert uper.model.backbone.drop_path_rate == 0.1
    mask = load_config(osp.join(ROOT, 'configs', 'cas_vit', 'mask_rcnn_cas_vit_xs.py'))
    assert mask.optim_wrapper.optimizer.lr == 2e-4
    assert mask.model.backbone.out_indices == (0, 1, 2, 3)
    assert 'segm' in mask.val_evaluator.metric


@pytest.mark.parametrize('head', HEADS)
def test_cmt_recipe(head):
    cfg = load_config(osp.join(ROOT, 'configs', 'cmt', f'{head}_cmt_s.py'))
    optim = cfg.optim_wrapper
    assert optim.optimizer.type == 'AdamW'
    assert optim.optimizer.lr == 1e-4
    assert optim.optimizer.weight_decay == 0.05
    assert optim.paramwise_cfg.norm_decay_mult == 0.
    assert optim.paramwise_cfg.custom_keys['pos_bias'].decay_mult == 0.
    assert '_delete_' not in optim
    backbone = cfg.model.backbone
    assert backbone.type == 'mmvit.CMT' and backbone.arch == 's'
    assert backbone.init_cfg.checkpoint == model_info('cmt_s')['weights']
