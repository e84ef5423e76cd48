"""Cascaded group attention as a plug-in block: the EfficientViT block on
its own and inside mmdet's ResNet through ``plugins=`` (YOLOv8:
projects/yolov8_cga)."""
import os.path as osp

import pytest
import torch

from conftest import ROOT, randomize, run_tool
from test_training import toy_options

CGA_CONFIGS = [osp.join(ROOT, 'configs', 'cga', f'{head}_r50_cga.py')
               for head in ('retinanet', 'mask_rcnn')]
PLUGIN = dict(cfg=dict(type='mmvit.CGABlock', num_heads=4),
              stages=(False, False, True, True), position='after_conv2')


def cga_blocks(model):
    from mmvit.models.plugins import CGABlock
    return {n: m for n, m in model.named_modules() if isinstance(m, CGABlock)}


@pytest.mark.parametrize('arch', ['m0', 'm1', 'm4'])
def test_block_is_the_efficientvit_block(arch):
    """Same parameters (keys, shapes, count) and outputs as the backbone's
    own block for the same weights, at sizes below, at and above the
    window (padded windows)."""
    from mmvit.models import EfficientViT
    from mmvit.models.plugins import CGABlock
    backbone = randomize(EfficientViT(arch=arch)).eval()
    settings = backbone.arch
    for stage, own in enumerate(b.blocks[-1] for b in backbone.stages):
        block = CGABlock(settings['channels'][stage],
                         settings['num_heads'][stage],
                         kernels=settings['kernels']).eval()
        own_state = own.state_dict()
        assert {k: v.shape for k, v in block.state_dict().items()} == \
            {k: v.shape for k, v in own_state.items()}
        block.load_state_dict(own_state, strict=True)
        for size in ((5, 6), (7, 7), (10, 13)):
            x = torch.randn(2, settings['channels'][stage], *size)
            with torch.no_grad():
                assert torch.equal(block(x), own(x))


def test_block_starts_as_identity_and_learns():
    from mmvit.models.plugins import CGABlock
    block = CGABlock(64, num_heads=2)
    x = torch.randn(2, 64, 9, 11)
    assert torch.equal(block(x), x)
    block.train()
    loss = (block(x) - 2 * x).square().mean()
    loss.backward()
    # the zero BatchNorm weights get gradients, so the branches can grow
    assert all(layer.bn.weight.grad.abs().sum() > 0
               for layer in block.residual_ends())


def test_block_rejects_bad_heads():
    from mmvit.models.plugins import CGABlock
    with pytest.raises(ValueError, match='not divisible by 3 heads'):
        CGABlock(64, num_heads=3)
    with pytest.raises(ValueError, match='need as many query kernels'):
        CGABlock(64, num_heads=4, kernels=[5, 5])


def _resnets():
    import mmvit  # noqa: F401
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    torch.manual_seed(0)
    plain = MODELS.build(dict(type='ResNet', depth=50, norm_eval=False))
    with_cga = MODELS.build(dict(type='ResNet', depth=50, norm_eval=False,
                                 plugins=[PLUGIN]))
    for model in (plain, with_cga):
        model.init_weights()
    return plain, with_cga


def test_resnet_plugin_is_identity_at_init_and_deploys():
    """mmdet ResNet-50 with the block after conv2 of stages 3 and 4: 6 + 3
    blocks at 256 / 512 channels; after the host's init (which sets every
    BatchNorm weight to 1) the blocks are still the identity, so the
    network computes what the plain ResNet with the same (here random, so
    that no residual branch is zero) weights does; trained blocks change
    the outputs, and the deploy pass folds them and keeps the outputs."""
    from mmvit.deploy import switch_to_deploy
    plain, with_cga = _resnets()
    blocks = cga_blocks(with_cga)
    assert sorted(blocks) == sorted(
        [f'layer3.{i}.cga' for i in range(6)] +
        [f'layer4.{i}.cga' for i in range(3)])
    assert [b.in_channels for b in blocks.values()] == [256] * 6 + [512] * 3
    randomize(plain)
    missing, unexpected = with_cga.load_state_dict(plain.state_dict(),
                                                   strict=False)
    assert not unexpected and missing and all('.cga.' in k for k in missing)
    plain.eval(), with_cga.eval()
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        for a, b in zip(plain(x), with_cga(x)):
            assert torch.equal(a, b)
        for block in blocks.values():  # as if trained
            randomize(block)
        expected = with_cga(x)
        assert not torch.allclose(expected[-1], plain(x)[-1], atol=1e-3)
        switch_to_deploy(with_cga)
        assert not any('bn' in m._modules for m in blocks.values()
                       for m in m.modules() if type(m).__name__ ==
                       'ConvNormAct')  # every conv-BN pair folded
        for a, b in zip(expected, with_cga(x)):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('path', CGA_CONFIGS, ids=osp.basename)
def test_detector_configs_build_and_run(path):
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmengine.registry import init_default_scope

    from mmvit.utils.config import load_config
    cfg = load_config(path)
    assert cfg.model.backbone.type == 'ResNet'
    assert cfg.model.backbone.init_cfg.checkpoint == 'torchvision://resnet50'
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model).eval()
    assert len(cga_blocks(model)) == 9
    size = (96, 128)
    sample = DetDataSample(metainfo=dict(
        img_shape=size, ori_shape=size, pad_shape=size,
        batch_input_shape=size, scale_factor=(1., 1.)))
    with torch.no_grad():
        outputs = model._forward(torch.rand(1, 3, *size), [sample])
    assert all(torch.isfinite(t).all() for t in
               torch.utils._pytree.tree_leaves(outputs)
               if isinstance(t, torch.Tensor))


@pytest.mark.slow
@pytest.mark.parametrize('head', ['retinanet', 'mask_rcnn'])
def test_detector_config_trains_on_toy_data(head, toy_coco, tmp_path):
    """One epoch through tools/train.py with the toy overlay (the backbone
    from scratch), validated with COCO metrics; the blocks' weights are in
    the checkpoint and changed by training."""
    from mmvit.utils import read_checkpoint
    config = osp.join(ROOT, 'configs', 'cga', f'{head}_r50_cga.py')
    overlay = osp.join(ROOT, 'configs', '_toy_', f'{head}.py')
    work = str(tmp_path / 'work')
    proc = run_tool(['tools/train.py', config, '--overlay', overlay,
                     '--work-dir', work] + toy_options(toy_coco, 1) +
                    # two iterations of two images
                    ['train_dataloader.dataset.indices=4',
                     'train_dataloader.batch_size=2'])
    assert 'coco/bbox_mAP' in proc.stdout + proc.stderr
    state = read_checkpoint(osp.join(work, 'epoch_1.pth'))['state_dict']
    weights = [v for k, v in state.items()
               if '.cga.' in k and k.endswith('ffn1.pw2.bn.weight')]
    assert len(weights) == 9
    assert any(w.abs().sum() > 0 for w in weights)  # learnt from zero
