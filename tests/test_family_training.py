"""One RetinaNet training iteration of each backbone family's real config
(with the toy overlay) through mmengine's Runner on the built-in data."""
import math
import os.path as osp

import pytest
import torch
from mmengine.hooks import Hook

from conftest import ROOT, make_runner, use_toy_coco
from mmvit.utils.config import load_config

# config -> parameter-name fragments that the recipe keeps free of decay
NO_DECAY = {
    'retinanet_cmt_ti.py': ('pos_bias.table', 'patch_embed.norm.weight'),
}


@pytest.mark.parametrize('config', sorted(NO_DECAY))
def test_retinanet_trains_one_iteration(config, toy_coco, tmp_path):
    cfg = load_config(osp.join(ROOT, 'configs', config),
                      [osp.join(ROOT, 'configs', '_toy_', 'retinanet.py')])
    use_toy_coco(cfg, toy_coco)
    cfg.train_dataloader.batch_size = 2
    cfg.train_cfg.max_epochs = 1
    cfg.train_cfg.val_interval = 2  # no validation
    cfg.train_dataloader.dataset.indices = 2  # one iteration
    runner = make_runner(cfg, tmp_path)
    backbone = runner.model.backbone
    before = {k: v.detach().clone() for k, v in backbone.named_parameters()}
    losses = []

    class LossRecorder(Hook):

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            losses.append(float(outputs['loss']))

    runner.register_hook(LossRecorder(), priority='LOWEST')
    runner.train()
    assert runner.iter == 1
    assert losses and all(math.isfinite(v) for v in losses)
    moved = [k for k, v in backbone.named_parameters()
             if not torch.equal(before[k], v)]
    # every trainable tensor of the backbone got a gradient step
    assert len(moved) == len(before), sorted(set(before) - set(moved))[:5]
    decay = {}
    names = {id(p): n for n, p in runner.model.named_parameters()}
    for group in runner.optim_wrapper.optimizer.param_groups:
        for param in group['params']:
            decay[names[id(param)]] = group['weight_decay']
    for fragment in NO_DECAY[config]:
        matched = [n for n in decay if fragment in n]
        assert matched and all(decay[n] == 0 for n in matched), fragment
    assert any(v > 0 for n, v in decay.items() if n.endswith('attn.q.weight'))
