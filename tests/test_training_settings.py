"""Training settings: mixed precision on the CPU (the optim wrapper behind
``tools/train.py --amp``, the layers kept in float32 under autocast) and
what ``compile`` in a config sets."""
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.optim import build_optim_wrapper
from torch import nn

from mmvit.engine.optim_wrapper import has_accelerator
from mmvit.models import CMT, EfficientViT

# with an accelerator the wrapper is mmengine's AmpOptimWrapper itself
cpu_only = pytest.mark.skipif(
    has_accelerator(), reason="the CPU path (an accelerator takes "
    "mmengine's AmpOptimWrapper)")


def build_wrapper(model, **kwargs):
    return build_optim_wrapper(model, dict(
        type='mmvit.MixedPrecisionOptimWrapper',
        optimizer=dict(type='AdamW', lr=0.1), **kwargs))


@cpu_only
def test_cpu_wrapper_trains_in_bfloat16_with_float32_state():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))
    wrapper = build_wrapper(model)
    before = [p.detach().clone() for p in model.parameters()]
    with wrapper.optim_context(model):
        assert torch.is_autocast_enabled('cpu')
        out = model(torch.randn(4, 8))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().square().mean())
    for p, old in zip(model.parameters(), before):
        assert p.dtype == torch.float32 and p.grad is None  # zeroed
        assert not torch.equal(p, old)
    state = wrapper.state_dict()
    assert 'loss_scaler' not in state and state['state']
    # a GPU run's checkpoint: its scaler state is ignored on the CPU
    state['loss_scaler'] = dict(scale=1024., growth_factor=2.)
    build_wrapper(model).load_state_dict(state)


@cpu_only
def test_cpu_wrapper_refuses_float16():
    with pytest.raises(ValueError, match=r"dtype='float16'.*bfloat16"):
        build_wrapper(nn.Linear(2, 2), dtype='float16')


def _train_config(monkeypatch, *args):
    """The config tools/train.py hands to the runner, for ``args``."""
    from mmengine.runner import Runner

    from conftest import run_main

    class Stop(Exception):
        pass

    seen = []

    def capture(cfg):
        seen.append(cfg)
        raise Stop

    monkeypatch.setattr(Runner, 'from_cfg', capture)
    with pytest.raises(Stop):
        run_main('tools/train.py', ['configs/cas_vit/retinanet_cas_vit_xs.py',
                                    '--work-dir', '/tmp/unused', *args])
    return seen[0]


def test_train_tool_amp_and_compile(monkeypatch):
    """--amp trains in mixed precision on any device (mmengine's wrapper
    with an accelerator, bfloat16 on a CPU); compile=True compiles static
    graphs (with torch's dynamic shapes CMT's graph fails to compile at a
    second input shape); an explicit ``dynamic`` is kept."""
    cfg = _train_config(monkeypatch, '--amp', '--cfg-options', 'compile=True')
    assert cfg.optim_wrapper.type == 'mmvit.MixedPrecisionOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    assert cfg.compile == dict(dynamic=False)
    build_optim_wrapper(nn.Linear(2, 2), cfg.optim_wrapper)
    cfg = _train_config(monkeypatch, '--cfg-options', 'compile.dynamic=True')
    assert cfg.compile == dict(dynamic=True)
    assert cfg.optim_wrapper.get('type', 'OptimWrapper') == 'OptimWrapper'


def cmt_layers(model):
    attn = model.stages[0].blocks[0].attn
    return attn.sr.conv, attn.q


def efficientvit_layers(model):
    merge = model.stages[1].downsample.merge
    return merge.conv2.conv, merge.conv3.conv


@cpu_only
@pytest.mark.parametrize('build, layers', [
    (lambda: CMT(arch='ti', drop_path_rate=0.), cmt_layers),
    (lambda: EfficientViT(arch='m0'), efficientvit_layers),
], ids=['cmt_key_reduction', 'efficientvit_patch_merging'])
def test_strided_depthwise_convs_compute_in_float32_under_cpu_autocast(
        build, layers):
    """With the CPU mixed-precision wrapper's hooks, CMT's key/value
    reduction and EfficientViT's stride-2 depthwise convolution stay float32
    under CPU autocast (their bfloat16 backward is the slow path); the
    layers around them run in bfloat16."""
    torch.manual_seed(0)
    model = build().train()
    strided, other = layers(model)
    wrapper = build_wrapper(model)
    for _ in range(2):  # the CPU wrapper adds its hooks once per model
        wrapper.optim_context(model)
    assert len(strided._forward_pre_hooks) == 1
    seen = {}

    def record(name):
        def hook(module, inputs, output):
            seen.setdefault(name, output.dtype)
        return hook

    strided.register_forward_hook(record('strided'))
    other.register_forward_hook(record('other'))
    x = torch.randn(2, 3, 64, 64)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        outs = model(x)
    assert seen == {'strided': torch.float32, 'other': torch.bfloat16}
    sum(o.float().mean() for o in outs).backward()
    assert strided.weight.grad.dtype == torch.float32
    assert strided.weight.grad.abs().sum() > 0
    # without autocast it is the float32 model throughout
    seen.clear()
    model(x)
    assert seen == {'strided': torch.float32, 'other': torch.float32}


def test_compile_makes_the_param_groups_plain_dicts():
    """mmengine's paramwise groups are ConfigDicts, which torch.compile of
    the optimizer step cannot trace; the hook of every config makes them
    plain dicts with the same keys and parameters."""
    from types import SimpleNamespace

    from mmvit.engine import PlainParamGroupsHook

    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    wrapper = build_optim_wrapper(model, ConfigDict(  # as the runner does
        optimizer=dict(type='AdamW', lr=0.1, weight_decay=0.05),
        paramwise_cfg=dict(norm_decay_mult=0.)))
    groups = wrapper.optimizer.param_groups
    assert any(type(g) is not dict for g in groups)  # what the hook fixes
    before = [(dict(g), g['params']) for g in groups]
    PlainParamGroupsHook().before_train(SimpleNamespace(optim_wrapper=wrapper))
    after = wrapper.optimizer.param_groups
    assert all(type(g) is dict for g in after)
    for group, (keys, params) in zip(after, before):
        assert group == keys and group['params'] is params
    assert after[-1]['weight_decay'] == 0.  # the norm's group
    model(torch.randn(3, 4)).sum().backward()
    wrapper.step()
