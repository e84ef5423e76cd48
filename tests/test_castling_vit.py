import math
import os.path as osp

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from conftest import ROOT, make_runner, randomize, use_toy_coco
from mmvit.engine import CastlingAnnealHook
from mmvit.models import CastlingViT, LinearAngularAttention
from mmvit.models.backbones.castling_vit import depthwise_residual
from mmvit.utils.config import load_config


def test_depths_and_arch_errors():
    assert [len(s.blocks) for s in CastlingViT('m').stages] == [3, 4, 6, 3]
    with pytest.raises(ValueError, match=r"unknown arch 'l'.*'m', 's', 'xs'"):
        CastlingViT('l')
    with pytest.raises(ValueError, match=r"missing keys \['mlp_ratios'\]"):
        CastlingViT(dict(channels=[8] * 4, depths=[1] * 4,
                         num_heads=[1] * 4))
    with pytest.raises(ValueError, match="res_conv must be one of"):
        LinearAngularAttention(64, 2, res_conv='2d')
    with pytest.raises(ValueError, match='aux_stages.*out of range'):
        CastlingViT('xs', aux_stages=(4, ))


# --- the attention ---------------------------------------------------------
def test_token1d_keys_and_shapes():
    attn = LinearAngularAttention(256, 8, res_conv='token1d')
    assert set(attn.state_dict()) == {'qkv.weight', 'proj.weight',
                                      'proj.bias', 'dconv.weight'}
    assert attn.dconv.weight.shape == (8, 1, 9, 1)
    spatial = LinearAngularAttention(256, 8, qkv_bias=True)
    assert set(spatial.state_dict()) == {'qkv.weight', 'qkv.bias',
                                         'proj.weight', 'proj.bias',
                                         'dconv.weight'}
    assert spatial.dconv.weight.shape == (256, 1, 3, 3)


def reference(attn, x, hw, factor):
    """The released formula, written out: token-1d residual, masked softmax
    branch of weight ``factor`` (skipped when 0)."""
    b, n, c = x.shape
    h = attn.num_heads
    q, k, v = attn.qkv(x).reshape(b, n, 3, h, c // h).permute(2, 0, 3, 1, 4)
    out = 0.5 * v
    if factor:
        probs = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(c // h), -1)
        out = out + factor * (probs * (probs > 0.02)) @ v
    qn = q / q.norm(dim=-1, keepdim=True)
    kn = k / k.norm(dim=-1, keepdim=True)
    out = out + (qn @ kn.transpose(-2, -1)) @ v / math.pi  # left to right
    out = out / out.norm(dim=-1, keepdim=True)
    res = torch.nn.functional.conv2d(v, attn.dconv.weight, padding=(4, 0),
                                     groups=h)
    return attn.proj((out + res).transpose(1, 2).reshape(b, n, c))


@pytest.mark.parametrize('factor', [0., 0.7])
def test_token1d_matches_the_formula(factor):
    torch.manual_seed(0)
    attn = LinearAngularAttention(64, 4, res_conv='token1d').train()
    attn.aux_factor = factor
    x = torch.randn(2, 48, 64)
    with torch.no_grad():
        assert torch.allclose(attn(x, (6, 8)), reference(attn, x, (6, 8),
                                                         factor), atol=1e-5)


def test_spatial_residual_is_a_2d_depthwise_conv():
    attn = LinearAngularAttention(8, 2, aux_softmax=False).eval()
    v = torch.randn(1, 2, 12, 4)  # (B, heads, N, d) of a 3 x 4 map
    fmap = v.transpose(1, 2).reshape(1, 12, 8).transpose(1, 2).reshape(
        1, 8, 3, 4)
    expected = attn.dconv(fmap).reshape(1, 8, 12).transpose(1, 2).reshape(
        1, 12, 2, 4).transpose(1, 2)
    assert torch.allclose(depthwise_residual(attn.dconv, 'spatial', v,
                                             (3, 4)), expected)


class _LargestTensor(TorchDispatchMode):
    """Records the largest element count of any tensor an op produces."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_eval_allocates_no_token_by_token_tensor():
    model = CastlingViT('xs').eval()  # factor 1: the branch is built
    assert model.aux_factor == 1
    x = torch.rand(1, 3, 256, 256)  # 4096 tokens in the first stage
    tokens = 64 * 64
    with torch.no_grad(), _LargestTensor() as probe:
        model(x)
    assert probe.largest < tokens * tokens // 8
    model.train()
    with torch.no_grad(), _LargestTensor() as probe:
        model(x)
    assert probe.largest >= tokens * tokens  # training computes the branch


def test_factor_zero_is_the_branch_free_model():
    with_branch = randomize(CastlingViT('xs', drop_path_rate=0.)).train()
    without = CastlingViT('xs', drop_path_rate=0., aux_softmax=False).train()
    state = with_branch.state_dict()
    state.pop('aux_factor')
    without.load_state_dict(state)
    x = torch.rand(2, 3, 64, 48)
    with torch.no_grad():
        with_branch.set_aux_factor(0.5)
        half = with_branch(x)
        with_branch.set_aux_factor(0.)
        zero = with_branch(x)
        plain = without(x)
    assert all(torch.equal(a, b) for a, b in zip(zero, plain))
    # the branch does act while its weight is not 0 (where the softmax
    # passes the mask: small random weights give near-uniform attention,
    # so at least in the coarsest stage)
    assert not torch.equal(zero[-1], half[-1])


def test_factor_round_trips_through_checkpoints(tmp_path):
    model = CastlingViT('xs')
    model.set_aux_factor(0.375)
    path = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in
                               model.state_dict().items()}}, path)
    fresh = CastlingViT('xs', init_cfg=dict(type='Pretrained',
                                            checkpoint=str(path)))
    assert float(fresh.stages[3].blocks[0].attn.aux_factor) == 1.
    fresh.init_weights()
    assert float(fresh.aux_factor) == 0.375
    assert {float(m.aux_factor) for m in fresh.modules()
            if isinstance(m, LinearAngularAttention)} == {0.375}


# --- the hook --------------------------------------------------------------
def test_anneal_schedule_values():
    linear = CastlingAnnealHook(start=1.0, end=0.5)
    assert [linear.factor(p) for p in (0, 0.125, 0.25, 0.4999)] == \
        pytest.approx([1.0, 0.75, 0.5, 0.0002])
    assert linear.factor(0.5) == 0. and linear.factor(0.9) == 0.
    cosine = CastlingAnnealHook(start=2.0, end=0.8, schedule='cosine')
    assert cosine.factor(0) == 2.0
    assert cosine.factor(0.4) == pytest.approx(1.0)
    assert cosine.factor(0.8) == 0. and cosine.factor(1.0) == 0.
    with pytest.raises(ValueError, match=r'end=0,.*end in \(0, 1\]'):
        CastlingAnnealHook(end=0)
    with pytest.raises(ValueError, match="schedule='step'.*schedule in"):
        CastlingAnnealHook(schedule='step')


@pytest.mark.slow
@pytest.mark.parametrize('by_epoch', [True, False])
def test_hook_in_training(by_epoch, toy_coco, tmp_path):
    cfg = load_config(
        osp.join(ROOT, 'configs', 'castling_vit', 'retinanet_castling_vit_xs.py'),
        [osp.join(ROOT, 'configs', '_toy_', 'retinanet.py')])
    assert 'mmvit.CastlingAnnealHook' in [h.type for h in cfg.custom_hooks]
    use_toy_coco(cfg, toy_coco)
    cfg.train_dataloader.batch_size = 2
    cfg.train_dataloader.dataset.indices = 4  # 2 iterations an epoch
    if by_epoch:
        cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=2,
                             val_interval=10)
    else:
        cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=4,
                             val_interval=10)
        cfg.train_dataloader.sampler = dict(type='InfiniteSampler')
        cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0,
                                    by_epoch=False)]
        cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                            by_epoch=False, interval=4)
    runner = make_runner(cfg, tmp_path)
    runner.train()
    history = runner.message_hub.get_scalar('train/aux_factor')
    # iterations 0..3 of 4, zero from half of the schedule on
    assert list(history.data[0]) == [1.0, 0.5, 0.0, 0.0]
    backbone = runner.model.backbone
    assert float(backbone.aux_factor) == 0.
    assert backbone.aux_stages == (2, 3)
    assert not any(m.uses_aux_branch() for m in backbone.modules()
                   if isinstance(m, LinearAngularAttention))


def test_zero_padding_gives_finite_outputs_and_gradients():
    """Tokens of zero padding (mmdet and mmseg pad batches with zeros) with
    the initial zero biases have zero queries and keys: the attention
    scales them to zero instead of dividing by their zero norm (NaN), in
    training, eval and deployed, and passes them no gradient (a gradient
    scaled by 1 / eps per normalisation overflowed within a few blocks)."""
    import copy

    from mmvit.deploy import switch_to_deploy
    torch.manual_seed(0)
    model = CastlingViT('xs', aux_stages=(2, 3))
    model.init_weights()
    x = torch.randn(2, 3, 128, 160)
    x[:, :, 64:] = 0
    x[:, :, :, 96:] = 0
    outs = [model.train()(x)]
    sum(o.square().mean() for o in outs[0]).backward()
    for name, param in model.named_parameters():
        assert bool(torch.isfinite(param.grad).all()), name
    with torch.no_grad():
        outs += [model.eval()(x), switch_to_deploy(copy.deepcopy(model))(x)]
    for out in outs:
        assert all(bool(torch.isfinite(o).all()) for o in out)
    torch.testing.assert_close(outs[2], outs[1], rtol=1e-4, atol=1e-5)


def test_attention_is_registered():
    """Configs build the attention by name (a plug-in block); every model
    name mmvit registers is a class."""
    import inspect

    from mmvit.registry import MODELS
    attn = MODELS.build(dict(type='mmvit.LinearAngularAttention',
                             embed_dims=32, num_heads=2))
    assert isinstance(attn, LinearAngularAttention)
    assert all(inspect.isclass(obj) for obj in MODELS.module_dict.values())
