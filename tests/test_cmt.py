import re

import pytest
import torch
import torch.nn.functional as F

from conftest import randomize
from mmvit.models import CMT
from mmvit.models.backbones.cmt import ResizableRelativePositionBias
from mmvit.models.utils.checkpoint import load_pretrained



def test_detection_size_tiny_input_and_out_indices():
    model = CMT('ti', out_indices=(1, -1)).eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 800, 1216))
        # smaller than every reduction ratio: one key cell per stage
        tiny = model(torch.rand(1, 3, 7, 5))
    assert [tuple(o.shape) for o in outs] == [(1, 92, 100, 152),
                                              (1, 368, 25, 38)]
    assert [tuple(o.shape) for o in tiny] == [(1, 92, 1, 1), (1, 368, 1, 1)]
    assert model.out_indices == (1, 3)
    assert hasattr(model, 'norm1') and not hasattr(model, 'norm0')


def test_fused_and_official_order_attention_agree(monkeypatch):
    sdpa = []
    real = F.scaled_dot_product_attention
    monkeypatch.setattr(F, 'scaled_dot_product_attention',
                        lambda *a, **k: sdpa.append(1) or real(*a, **k))
    fused = randomize(CMT('ti', fused_attn=True)).eval()
    plain = CMT('ti', fused_attn=False).eval()
    plain.load_state_dict(fused.state_dict())
    x = torch.rand(1, 3, 96, 72)
    with torch.no_grad():
        for a, b in zip(fused(x), plain(x)):
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-5)
    assert len(sdpa) == 16  # the fused path ran, once per block


# --- the resizable position bias -------------------------------------------
def test_bias_not_resized_at_training_resolution(monkeypatch):
    model = CMT('ti').eval()
    calls = []
    monkeypatch.setattr(ResizableRelativePositionBias, 'resize',
                        lambda self, q, k: calls.append((q, k)))
    seen = []
    for stage in model.stages:
        stage.pos_bias.register_forward_hook(
            lambda module, args, out: seen.append(out is module.table))
    with torch.no_grad():
        model(torch.rand(1, 3, 160, 160))
    assert calls == [] and seen == [True] * 4


def test_bias_resize_axes():
    """Queries and keys are resized on their own axes, bicubically."""
    bias = ResizableRelativePositionBias(2, (4, 4), (3, 3))
    with torch.no_grad():
        # depends on the key position only
        keys = torch.randn(2, 1, 3, 3)
        bias.table.copy_(keys.reshape(2, 1, 9).expand(2, 16, 9))
    out = bias.resize((6, 5), (5, 4))
    assert out.shape == (2, 30, 20)
    expected = torch.nn.functional.interpolate(
        keys, size=(5, 4), mode='bicubic', align_corners=False)
    assert torch.allclose(out, expected.reshape(2, 1, 20).expand(2, 30, 20),
                          atol=1e-6)
    # depends on the query position only
    with torch.no_grad():
        queries = torch.randn(2, 1, 4, 4)
        bias.table.copy_(queries.reshape(2, 16, 1).expand(2, 16, 9))
    out = bias.resize((6, 5), (5, 4))
    expected = torch.nn.functional.interpolate(
        queries, size=(6, 5), mode='bicubic', align_corners=False)
    assert torch.allclose(out, expected.reshape(2, 30, 1).expand(2, 30, 20),
                          atol=1e-6)


def _count_resizes(monkeypatch):
    calls = []
    original = ResizableRelativePositionBias.resize

    def counting(self, q_size, k_size):
        calls.append((q_size, k_size))
        return original(self, q_size, k_size)

    monkeypatch.setattr(ResizableRelativePositionBias, 'resize', counting)
    return calls


def test_bias_resized_once_per_stage_and_forward(monkeypatch):
    calls = _count_resizes(monkeypatch)
    model = CMT('ti').eval()
    x = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        first = model(x)
        # once per stage, not per block (ti has 2+2+10+2 blocks)
        assert len(calls) == 4
        assert calls[0] == ((24, 32), (3, 4))
        second = model(x)
        assert len(calls) == 8  # nothing kept between forwards
        for a, b in zip(first, second):
            assert torch.equal(a, b)
    # gradients reach the stored table
    model.train()
    loss = sum(o.mean() for o in model(x))
    loss.backward()
    assert all(s.pos_bias.table.grad is not None
               and s.pos_bias.table.grad.abs().sum() > 0
               for s in model.stages)


# --- arguments, freezing ---------------------------------------------------
def test_invalid_arguments():
    with pytest.raises(ValueError, match='train_size 100 is not a multiple of 32'):
        CMT(dict(CMT.arch_settings['ti'], train_size=100))
    with pytest.raises(ValueError, match='sr_ratios has 3 entries'):
        CMT(dict(CMT.arch_settings['ti'], sr_ratios=[8, 4, 2]))


def test_custom_arch_dict():
    model = CMT(dict(channels=[16, 24, 32, 40], depths=[1, 1, 2, 1],
                     stem_channels=8, mlp_ratio=2, num_heads=[1, 2, 4, 8],
                     sr_ratios=[4, 2, 1, 1], train_size=64)).eval()
    outs = model(torch.rand(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [16, 24, 32, 40]
    assert tuple(model.stages[0].pos_bias.table.shape) == (1, 256, 16)


def test_default_init_is_the_official_one():
    model = CMT('ti')
    model.init_weights()
    linear = model.stages[2].blocks[0].attn.q
    # timm's trunc_normal_(std=.02): bounds +-2 absolute, so about N(0, .02)
    assert linear.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert torch.all(linear.bias == 0)
    conv = model.stages[1].blocks[0].ffn.expand.conv
    fan_out = conv.out_channels
    assert conv.weight.std().item() == pytest.approx((2 / fan_out)**0.5,
                                                     rel=0.1)
    assert torch.all(model.stages[0].patch_embed.norm.weight == 1)


# --- checkpoints -----------------------------------------------------------
_OFFICIAL_BLOCK = [
    ('lpu.', 'proj.'), ('attn.sr.conv.', 'attn.sr.0.'),
    ('attn.sr.bn.', 'attn.sr.1.'), ('ffn.expand.conv.', 'mlp.conv1.0.'),
    ('ffn.expand.bn.', 'mlp.conv1.2.'), ('ffn.dw.', 'mlp.proj.'),
    ('ffn.dw_bn.', 'mlp.proj_bn.'), ('ffn.project.conv.', 'mlp.conv2.0.'),
    ('ffn.project.bn.', 'mlp.conv2.1.')
]


def official_name(key):
    """Our key -> the key in the official ``cmt.py`` state dict."""
    match = re.match(r'stem\.(\d)\.(conv|bn)\.(.*)', key)
    if match:
        kind = 'conv' if match.group(2) == 'conv' else 'norm'
        return f'stem_{kind}{int(match.group(1)) + 1}.{match.group(3)}'
    stage, rest = re.match(r'stages\.(\d)\.(.*)', key).groups()
    letter = 'abcd'[int(stage)]
    if rest == 'pos_bias.table':
        return f'relative_pos_{letter}'
    if rest.startswith('patch_embed.'):
        return f'patch_embed_{letter}{rest[len("patch_embed"):]}'
    block, inner = re.match(r'blocks\.(\d+)\.(.*)', rest).groups()
    for ours, theirs in _OFFICIAL_BLOCK:
        if inner.startswith(ours):
            inner = theirs + inner[len(ours):]
            break
    return f'blocks_{letter}.{block}.{inner}'


def official_state_dict(model):
    state = {
        official_name(k): v.clone()
        for k, v in model.state_dict().items() if not k.startswith('norm')
    }
    dim = model.channels[-1]
    state.update({
        '_fc.weight': torch.zeros(1280, dim, 1, 1),
        '_fc.bias': torch.zeros(1280),
        '_bn.weight': torch.ones(1280), '_bn.bias': torch.zeros(1280),
        'head.weight': torch.zeros(1000, 1280), 'head.bias': torch.zeros(1000)
    })
    return state


def test_official_layout_keys():
    keys = set(official_state_dict(CMT('ti')))
    assert {'stem_conv1.weight', 'stem_norm3.running_var',
            'patch_embed_a.proj.weight', 'patch_embed_d.norm.bias',
            'relative_pos_a', 'relative_pos_d', 'blocks_a.0.proj.weight',
            'blocks_a.1.attn.sr.0.weight', 'blocks_c.9.attn.sr.1.running_mean',
            'blocks_c.9.mlp.conv1.0.weight', 'blocks_c.9.mlp.conv1.2.bias',
            'blocks_d.1.mlp.proj_bn.weight', 'blocks_d.1.mlp.conv2.1.bias',
            'blocks_b.0.attn.q.weight', 'blocks_b.0.norm2.weight'} <= keys
    assert not any(k.startswith('blocks_d.0.attn.sr') for k in keys)
    assert not any(k.startswith(('stages.', 'stem.')) for k in keys)


def test_load_official_checkpoint(tmp_path):
    source = randomize(CMT('xs'))
    path = tmp_path / 'cmt_xs.pth'
    torch.save({'model': official_state_dict(source), 'epoch': 299}, path)
    model = CMT('xs', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    before = model.norm0.weight.clone()
    model.init_weights()
    ours = model.state_dict()
    for key, value in source.state_dict().items():
        if not key.startswith('norm'):
            assert torch.equal(ours[key], value), key
    assert torch.equal(model.norm0.weight, before)  # not in the file
    report = load_pretrained(CMT('xs'), str(path))
    assert set(report.unexpected) == {
        '_fc.weight', '_fc.bias', '_bn.weight', '_bn.bias', 'head.weight',
        'head.bias'
    }
    assert sorted(report.missing) == sorted(
        f'norm{i}.{p}' for i in range(4) for p in ('weight', 'bias'))


def test_wrong_variant_checkpoint(tmp_path):
    other = tmp_path / 'cmt_s.pth'
    torch.save({'model': official_state_dict(CMT('s'))}, other)
    model = CMT('ti', init_cfg=dict(type='Pretrained',
                                    checkpoint=str(other)))
    with pytest.raises(ValueError,
                       match=r'another variant(.|\n)*stages\.0\.pos_bias\.'
                       r'table: checkpoint \(1, 3136, 49\) vs model '
                       r'\(1, 1600, 25\)'):
        model.init_weights()


def test_deployed_bias_keeps_each_grid_until_a_state_dict_loads(
        monkeypatch):
    """The deployed structure (frozen) keeps each resized table: resized
    once per stage and grid, and again after ``load_state_dict``."""
    from mmvit.deploy import switch_to_deploy
    calls = _count_resizes(monkeypatch)
    model = switch_to_deploy(CMT('ti'))
    x = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        first = model(x)
        model(x)
        assert len(calls) == 4
        model(torch.rand(1, 3, 64, 64))
        assert len(calls) == 8
        state = model.state_dict()
        state['stages.0.pos_bias.table'] = \
            state['stages.0.pos_bias.table'] + 1
        model.load_state_dict(state)
        again = model(x)
    assert len(calls) == 12
    assert not torch.equal(first[0], again[0])
