import copy
import re

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from conftest import randomize
from mmvit.deploy import switch_to_deploy
from mmvit.models import EfficientViT, EfficientViTFPN
from mmvit.models.backbones.efficientvit import LocalWindowAttention
from mmvit.models.utils.checkpoint import load_pretrained



def test_detection_size_and_out_indices():
    model = EfficientViT('m0', out_indices=(0, 2)).eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 800, 1216))
    assert [tuple(o.shape) for o in outs] == [(1, 64, 50, 76),
                                              (1, 192, 13, 19)]
    assert model.out_channels == (64, 192)


def test_query_kernels_per_variant():
    """m0 keeps its own 5x5 kernels (not the 7/5/3/3 mix of other sizes)."""
    for arch, kernels in [('m0', [5, 5, 5, 5]), ('m3', [5, 5, 5, 5]),
                          ('m4', [7, 5, 3, 3]), ('m1', [7, 5])]:
        attn = EfficientViT(arch).stages[0].blocks[0].mixer.attn
        assert [dw.conv.kernel_size[0] for dw in attn.dws] == kernels


def test_windows_are_independent_and_padded():
    torch.manual_seed(0)
    layer = LocalWindowAttention(32, 2, [5, 3], window_size=7)
    randomize(layer).eval()
    x = torch.randn(1, 32, 9, 15)
    with torch.no_grad():
        out = layer(x)
        padded = torch.nn.functional.pad(x, (0, 6, 0, 5))  # 14 x 21
        for r in range(2):
            for c in range(3):
                window = padded[..., 7 * r:7 * r + 7, 7 * c:7 * c + 7]
                expected = layer.attn(window)
                got = out[..., 7 * r:7 * r + 7, 7 * c:7 * c + 7]
                h, w = got.shape[-2:]
                assert torch.allclose(got, expected[..., :h, :w], atol=1e-6)
        # a map no larger than a window attends as a whole
        small = torch.randn(1, 32, 4, 6)
        assert torch.equal(layer(small), layer.attn(small))


def test_bias_offsets():
    attn = EfficientViT('m0').stages[1].blocks[0].mixer.attn
    with torch.no_grad():
        attn.attention_biases.copy_(torch.randn_like(attn.attention_biases))
    attn.eval()
    with torch.no_grad():
        bias = attn.bias((3, 4))
        assert bias.shape == (4, 12, 12)
        table = attn.attention_biases.reshape(4, 7, 7)
        # query (0, 1), key (2, 3): offset (2, 2)
        assert torch.equal(bias[:, 1, 2 * 4 + 3], table[:, 2, 2])
        assert torch.equal(bias[:, 5, 4], table[:, 0, 1])  # (1,1) vs (1,0)
        # gathered anew at each call: a write through .data shows at once
        attn.attention_biases.data.add_(1)
        assert torch.allclose(attn.bias((3, 4)), bias + 1)
    assert attn.bias((3, 4)).requires_grad


def test_invalid_arguments():
    with pytest.raises(ValueError, match='4 heads need as many query kernels'):
        EfficientViT(dict(channels=[64, 128, 192], depths=[1, 2, 3],
                          num_heads=[4, 4, 4], kernels=[5, 5]))
    with pytest.raises(ValueError, match='channels 130 are not divisible'):
        EfficientViT(dict(channels=[64, 130, 192], depths=[1, 2, 3],
                          num_heads=[4, 4, 4], kernels=[5, 5, 5, 5]))
    assert EfficientViT('m0').norm_eval  # the official downstream default
    with pytest.raises(ValueError, match='num_extra_trans_convs must be'):
        EfficientViTFPN([64, 128, 192], 64, 3, num_extra_trans_convs=3)


# --- fusion ----------------------------------------------------------------
@pytest.mark.parametrize('arch', ['m0', 'm5'])
def test_switch_to_deploy(arch):
    model = randomize(EfficientViT(arch)).eval()
    x = torch.rand(2, 3, 160, 208)
    with torch.no_grad():
        expected = model(x)
        fused = switch_to_deploy(copy.deepcopy(model))
        got = fused(x)
    assert not any(isinstance(m, _BatchNorm) for m in fused.modules())
    assert any(isinstance(m, _BatchNorm) for m in model.modules())
    for a, b in zip(expected, got):
        assert ((a - b).abs().max() / a.abs().max()).item() < 1e-5


def test_fuse_one_pair():
    layer = EfficientViT('m0').stem[0]
    randomize(layer).eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        expected = layer(x)
        layer.switch_to_deploy()
        assert list(layer._modules) == ['conv']
        assert torch.allclose(layer(x), expected, rtol=1e-5, atol=1e-6)


# --- the neck --------------------------------------------------------------
@pytest.mark.parametrize('trans, extra, strides', [
    (1, 'on_input', [8, 16, 32, 64, 128]),   # RetinaNet
    (2, False, [4, 8, 16, 32, 64]),          # Mask R-CNN, segmentation
])
def test_fpn_levels(trans, extra, strides):
    backbone = EfficientViT('m0').eval()
    neck = EfficientViTFPN([64, 128, 192], 32, 5, add_extra_convs=extra,
                           num_extra_trans_convs=trans)
    neck.init_weights()
    x = torch.rand(1, 3, 256, 384)
    with torch.no_grad():
        outs = neck(backbone(x))
    assert [(o.shape[2], o.shape[3]) for o in outs] == \
        [(256 // s if s < 128 else 2, 384 // s) for s in strides]
    assert all(o.shape[1] == 32 for o in outs)


# --- checkpoints -----------------------------------------------------------
def official_name(key, se='conv'):
    """Our key -> the key of the official classification checkpoint."""
    key = re.sub(r'\.conv\.(weight|bias)$', r'.c.\1', key)
    match = re.match(r'stem\.(\d)\.(.*)', key)
    if match:
        return f'patch_embed.{match.group(1)}.{match.group(2)}'
    stage, rest = re.match(r'stages\.(\d)\.(.*)', key).groups()
    stage = int(stage)
    reduce, expand = (('conv_reduce', 'conv_expand') if se == 'conv' else
                      ('fc1', 'fc2'))
    match = re.match(r'downsample\.(pre|merge|post)\.(.*)', rest)
    if match:
        index = ('pre', 'merge', 'post').index(match.group(1))
        inner = match.group(2)
        inner = re.sub(r'^dw\.', '0.m.', inner)
        inner = re.sub(r'^ffn\.', '1.m.', inner)
        inner = inner.replace('se.reduce.', f'se.{reduce}.').replace(
            'se.expand.', f'se.{expand}.')
        return f'blocks{stage + 1}.{index}.{inner}'
    block, inner = re.match(r'blocks\.(\d+)\.(.*)', rest).groups()
    block = int(block) + (3 if stage > 0 else 0)
    inner = re.sub(r'^(dw[01]|ffn[01])\.', r'\1.m.', inner)
    inner = inner.replace('mixer.attn.proj.', 'mixer.m.attn.proj.1.')
    inner = re.sub(r'^mixer\.attn\.', 'mixer.m.attn.', inner)
    return f'blocks{stage + 1}.{block}.{inner}'


def official_state_dict(model, se='conv'):
    """The official layout at 224: stage-3 bias tables hold 4x4 offsets."""
    state = {}
    for key, value in model.state_dict().items():
        name = official_name(key, se)
        if name.endswith('attention_biases') and name.startswith('blocks3'):
            heads = value.shape[0]
            value = value.reshape(heads, 7, 7)[:, :4, :4].reshape(heads, 16)
            state[name.replace('attention_biases', 'attention_bias_idxs')] = \
                torch.zeros(16, 16, dtype=torch.long)
        state[name] = value.clone()
    dim = model.channels[-1]
    state.update({'head.bn.weight': torch.ones(dim),
                  'head.l.weight': torch.zeros(1000, dim)})
    return state


def test_official_layout_keys():
    keys = set(official_state_dict(EfficientViT('m4')))
    assert {'patch_embed.0.c.weight', 'patch_embed.6.bn.running_var',
            'blocks1.0.dw0.m.c.weight', 'blocks1.0.ffn0.m.pw2.bn.bias',
            'blocks1.0.mixer.m.attn.qkvs.3.c.weight',
            'blocks1.0.mixer.m.attn.dws.0.bn.weight',
            'blocks1.0.mixer.m.attn.proj.1.c.weight',
            'blocks1.0.mixer.m.attn.attention_biases',
            'blocks2.0.0.m.c.weight', 'blocks2.0.1.m.pw1.bn.weight',
            'blocks2.1.conv1.c.weight', 'blocks2.1.se.conv_reduce.weight',
            'blocks2.1.conv3.bn.bias', 'blocks3.2.1.m.pw2.c.weight',
            'blocks3.3.dw1.m.bn.weight', 'blocks3.5.ffn1.m.pw1.c.weight',
            'blocks3.3.mixer.m.attn.attention_bias_idxs'} <= keys
    assert not any(k.startswith(('stages.', 'stem.')) for k in keys)


@pytest.mark.parametrize('se', ['conv', 'fc'])
def test_load_official_checkpoint_with_bias_rule(se, tmp_path):
    source = randomize(EfficientViT('m4'))
    path = tmp_path / 'efficientvit_m4.pth'
    official = official_state_dict(source, se)
    torch.save({'model': official}, path)
    model = EfficientViT('m4', init_cfg=dict(type='Pretrained',
                                             checkpoint=str(path)))
    model.init_weights()
    ours = model.state_dict()
    for key, value in source.state_dict().items():
        if 'attention_biases' in key and key.startswith('stages.2'):
            heads = value.shape[0]
            learned = value.reshape(heads, 7, 7)[:, :4, :4]
            got = ours[key].reshape(heads, 7, 7)
            assert torch.equal(got[:, :4, :4], learned), key  # exact
            # unseen offsets: the nearest learned one along each axis
            assert torch.equal(got[:, 6, 2], learned[:, 3, 2])
            assert torch.equal(got[:, 1, 5], learned[:, 1, 3])
            assert torch.equal(got[:, 5, 6], learned[:, 3, 3])
        else:
            assert torch.equal(ours[key], value), key
    report = load_pretrained(EfficientViT('m4'), str(path))
    assert report.missing == []
    assert sorted(report.unexpected) == ['head.bn.weight', 'head.l.weight']


def test_load_own_and_detector_checkpoints(tmp_path):
    source = randomize(EfficientViT('m0'))
    path = tmp_path / 'retinanet.pth'
    state = {f'backbone.{k}': v for k, v in source.state_dict().items()}
    state['neck.trans_convs.0.conv.weight'] = torch.zeros(1)
    torch.save({'state_dict': state}, path)
    model = EfficientViT('m0', init_cfg=dict(type='Pretrained',
                                             checkpoint=str(path)))
    model.init_weights()
    x = torch.rand(1, 3, 96, 112)
    with torch.no_grad():
        for a, b in zip(model.eval()(x), source.eval()(x)):
            assert torch.equal(a, b)
    # the official downstream layout: `backbone.` + official names
    path = tmp_path / 'official_retinanet.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in
                               official_state_dict(source).items()}}, path)
    model = EfficientViT('m0', init_cfg=dict(type='Pretrained',
                                             checkpoint=str(path)))
    model.init_weights()
    assert torch.equal(model.stages[0].blocks[0].mixer.attn.attention_biases,
                       source.stages[0].blocks[0].mixer.attn.attention_biases)


def test_wrong_variant_checkpoint(tmp_path):
    path = tmp_path / 'efficientvit_m4.pth'
    torch.save({'model': official_state_dict(EfficientViT('m4'))}, path)
    model = EfficientViT('m0', init_cfg=dict(type='Pretrained',
                                             checkpoint=str(path)))
    with pytest.raises(ValueError, match=r'another variant(.|\n)*stem\.0\.'
                       r'conv\.weight: checkpoint \(16, 3, 3, 3\) vs model '
                       r'\(8, 3, 3, 3\)'):
        model.init_weights()


@pytest.mark.parametrize('arch', ['m4'])
def test_timm_weights_give_timm_logits(arch, tmp_path):
    """timm's ``efficientvit_m*`` state dict (random weights, BatchNorm
    statistics set) loads into the classifier config and the backbone and
    gives timm's logits."""
    import timm

    import mmvit
    source = timm.create_model(f'efficientvit_{arch}')
    randomize(source)
    source.eval()
    path = tmp_path / f'timm_efficientvit_{arch}.pth'
    torch.save(source.state_dict(), path)
    classifier = mmvit.get_model(f'efficientvit_{arch}_in1k',
                                 pretrained=str(path)).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = source(x)
        got = classifier(x, mode='tensor')
    assert ((got - expected).abs().max() / expected.abs().max()).item() < 1e-5
    backbone = EfficientViT(arch, out_indices=(2, ), init_cfg=dict(
        type='Pretrained', checkpoint=str(path)))
    backbone.init_weights()
    with torch.no_grad():
        features = source.forward_features(x)
        (ours, ) = backbone.eval()(x)
    assert ((ours - features).abs().max() / features.abs().max()) < 1e-5
