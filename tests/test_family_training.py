"""Two RetinaNet training iterations of each backbone family's real config
(with the toy overlay) through mmengine's Runner on the built-in data."""
import math
import os.path as osp

import pytest
import torch
from mmengine.hooks import Hook

from conftest import ROOT, make_runner, use_toy_coco, config_file
from mmvit.utils.config import load_config

pytestmark = pytest.mark.slow  # end-to-end runs

# config -> (parameter-name fragments the recipe keeps free of weight decay,
#            a fragment of parameters it decays)
RECIPES = {
    'retinanet_cmt_ti.py': (('pos_bias.table', 'patch_embed.norm.weight'),
                            'attn.q.weight'),
    'retinanet_efficientvit_m0.py': (('attention_biases', ),
                                     'qkvs.0.conv.weight'),
}


@pytest.mark.parametrize('config', sorted(RECIPES))
def test_retinanet_trains(config, toy_coco, tmp_path):
    cfg = load_config(config_file(config),
                      [osp.join(ROOT, 'configs', '_toy_', 'retinanet.py')])
    use_toy_coco(cfg, toy_coco)
    cfg.train_dataloader.batch_size = 2
    cfg.train_cfg.max_epochs = 1
    cfg.train_cfg.val_interval = 2  # no validation
    # two iterations: zero-initialised BatchNorm weights (EfficientViT)
    # pass gradients upstream from the second step on
    cfg.train_dataloader.dataset.indices = 4
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
    assert runner.iter == 2
    assert losses and all(math.isfinite(v) for v in losses)
    # every tensor of the backbone received a gradient: AdamW's running
    # second moment is non-zero (a step may round away on tensors behind
    # zero-initialised BatchNorm weights, so moving is checked on the stem)
    state = runner.optim_wrapper.optimizer.state
    no_grad = [k for k, p in backbone.named_parameters()
               if p not in state or not state[p]['exp_avg_sq'].any()]
    assert not no_grad, no_grad[:5]
    stem = [k for k in before if k.startswith('stem.')]
    assert stem and all(not torch.equal(before[k], dict(
        backbone.named_parameters())[k]) for k in stem)
    decay = {}
    names = {id(p): n for n, p in runner.model.named_parameters()}
    for group in runner.optim_wrapper.optimizer.param_groups:
        for param in group['params']:
            decay[names[id(param)]] = group['weight_decay']
    no_decay, decayed = RECIPES[config]
    for fragment in no_decay:
        matched = [n for n in decay if fragment in n]
        assert matched and all(decay[n] == 0 for n in matched), fragment
    assert any(v > 0 for n, v in decay.items() if n.endswith(decayed))
