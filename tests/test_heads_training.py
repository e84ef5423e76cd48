"""Each head type trains an iteration and validates through the Runner on
the built-in data (RetinaNet goes through the tools in test_training.py)."""
import os.path as osp

import pytest
import torch

from conftest import ROOT, make_runner, use_toy_coco
from mmvit.utils.config import load_config

pytestmark = pytest.mark.slow  # end-to-end runs


def test_mask_rcnn_trains_and_validates(toy_coco, tmp_path):
    cfg = load_config(
        osp.join(ROOT, 'configs', 'cas_vit', 'mask_rcnn_cas_vit_xs.py'),
        [osp.join(ROOT, 'configs', '_toy_', 'mask_rcnn.py')])
    use_toy_coco(cfg, toy_coco)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].batch_size = 4
    cfg.train_cfg.max_epochs = 1
    cfg.train_cfg.val_interval = 1
    cfg.train_dataloader.dataset.indices = 4  # one iteration
    runner = make_runner(cfg, tmp_path)
    before = runner.model.backbone.stem[0].conv.weight.detach().clone()
    runner.train()
    assert runner.iter == 1
    assert not torch.equal(before, runner.model.backbone.stem[0].conv.weight)
    metrics = runner.val_loop.run()
    # with untrained weights AP may be empty or zero, but both box and
    # mask evaluations ran on the real CocoMetric
    assert metrics == {} or {'coco/bbox_mAP', 'coco/segm_mAP'} <= set(metrics)


@pytest.mark.parametrize('head', ['semantic_fpn', 'upernet'])
def test_segmentor_trains_and_validates(head, toy_ade, tmp_path):
    cfg = load_config(osp.join(ROOT, 'configs', 'cas_vit', f'{head}_cas_vit_xs.py'),
                      [osp.join(ROOT, 'configs', '_toy_', 'ade.py')])
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = toy_ade + '/'
    cfg.train_dataloader.batch_size = 2
    cfg.train_cfg.max_iters = 2
    cfg.train_cfg.val_interval = 2
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    runner = make_runner(cfg, tmp_path)
    runner.train()
    assert runner.iter == 2
    metrics = runner.val_loop.run()
    assert {'aAcc', 'mIoU', 'mAcc'} <= set(metrics)
    assert 0 <= metrics['mIoU'] <= 100
