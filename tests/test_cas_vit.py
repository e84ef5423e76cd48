import pytest
import torch

from conftest import randomize
from mmvit.models import CASViT
from mmvit.models.utils.checkpoint import load_pretrained


def test_detection_size_and_out_indices():
    model = CASViT('xs', out_indices=(1, -1)).eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 800, 1216))
    assert [tuple(o.shape) for o in outs] == [(1, 56, 100, 152),
                                              (1, 220, 25, 38)]
    assert model.out_indices == (1, 3)
    assert hasattr(model, 'norm1') and not hasattr(model, 'norm0')


def test_custom_arch_dict():
    model = CASViT(dict(depths=[1, 1, 2, 1], channels=[16, 24, 32, 40],
                        mlp_ratio=2)).eval()
    outs = model(torch.rand(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [16, 24, 32, 40]


# --- checkpoints -----------------------------------------------------------
# The official key layout (spec): stem `patch_embed.{0,1,3,4}`, blocks
# `network.{0,2,4,6}.{j}`, downsampling `network.{1,3,5}.{proj,norm}`.
_OFFICIAL_BLOCK = {
    'local_integration.0.conv': 'local_perception.network.0',
    'local_integration.0.bn': 'local_perception.network.1',
    'local_integration.1.conv': 'local_perception.network.2',
    'local_integration.2': 'local_perception.network.4',
    'token_mixer.{g}_gate.0.dw.conv': 'attn.oper_{g}.0.block.0',
    'token_mixer.{g}_gate.0.dw.bn': 'attn.oper_{g}.0.block.1',
    'token_mixer.{g}_gate.0.score': 'attn.oper_{g}.0.block.3',
    'token_mixer.{g}_gate.1.fc': 'attn.oper_{g}.1.block.1',
    'token_mixer.qkv': 'attn.qkv',
    'token_mixer.dwc': 'attn.dwc',
    'token_mixer.proj': 'attn.proj',
    'norm1': 'norm1', 'norm2': 'norm2', 'mlp.fc1': 'mlp.fc1',
    'mlp.fc2': 'mlp.fc2',
}


def official_name(key):
    """Our key -> the official classification checkpoint's key."""
    module, _, param = key.rpartition('.')
    stem = {'stem.0.conv': 0, 'stem.0.bn': 1, 'stem.1.conv': 3,
            'stem.1.bn': 4}
    if module in stem:
        return f'patch_embed.{stem[module]}.{param}'
    parts = module.split('.')
    stage = int(parts[1])
    if parts[2] == 'downsample':
        layer = {'conv': 'proj', 'bn': 'norm'}[parts[3]]
        return f'network.{2 * stage - 1}.{layer}.{param}'
    block, inner = parts[3], '.'.join(parts[4:])
    for ours, theirs in _OFFICIAL_BLOCK.items():
        for g in 'qk':
            if inner == ours.format(g=g):
                return f'network.{2 * stage}.{block}.' \
                       f'{theirs.format(g=g)}.{param}'
    raise KeyError(key)


def official_state_dict(model):
    """Tensors of ``model`` under the official names, plus a classifier."""
    state = {
        official_name(k): v.clone()
        for k, v in model.state_dict().items() if not k.startswith('norm')
    }
    dim = model.channels[-1]
    state.update({
        'norm.weight': torch.ones(dim), 'norm.bias': torch.zeros(dim),
        'head.weight': torch.zeros(1000, dim), 'head.bias': torch.zeros(1000),
        'dist_head.weight': torch.zeros(1000, dim),
        'dist_head.bias': torch.zeros(1000)
    })
    return state


def test_official_layout_keys():
    keys = set(official_state_dict(CASViT('xs')))
    depths = [2, 2, 4, 2]
    assert {k.split('.')[1] for k in keys if k.startswith('patch_embed')} \
        == {'0', '1', '3', '4'}
    assert {k.rsplit('.', 1)[0] for k in keys
            if k.startswith('network.3.')} == {'network.3.proj',
                                               'network.3.norm'}
    for stage, depth in enumerate(depths):
        blocks = {k.split('.')[2] for k in keys
                  if k.startswith(f'network.{2 * stage}.')}
        assert blocks == {str(j) for j in range(depth)}


def test_load_official_checkpoint(tmp_path):
    source = randomize(CASViT('s'))
    path = tmp_path / 'cas_vit_s.pth'
    torch.save({'model': official_state_dict(source), 'model_ema': {},
                'epoch': 299}, path)
    model = CASViT('s', init_cfg=dict(type='Pretrained',
                                      checkpoint=str(path)))
    before = model.norm0.weight.clone()
    model.init_weights()
    ours = model.state_dict()
    for key, value in source.state_dict().items():
        if not key.startswith('norm'):
            assert torch.equal(ours[key], value), key
    assert torch.equal(model.norm0.weight, before)  # not in the file
    report = load_pretrained(CASViT('s'), str(path))
    assert set(report.unexpected) == {
        'norm.weight', 'norm.bias', 'head.weight', 'head.bias',
        'dist_head.weight', 'dist_head.bias'
    }
    assert report.missing and all(k.startswith('norm') for k in
                                  report.missing)


def test_checkpoint_errors(tmp_path):
    missing = tmp_path / 'nope.pth'
    model = CASViT('xs', init_cfg=dict(type='Pretrained',
                                       checkpoint=str(missing)))
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        model.init_weights()
    other = tmp_path / 'cas_vit_s.pth'
    torch.save({'model': official_state_dict(CASViT('s'))}, other)
    model = CASViT('xs', init_cfg=dict(type='Pretrained',
                                       checkpoint=str(other)))
    with pytest.raises(ValueError,
                       match=r'another variant(.|\n)*stages\.1\.downsample\.'
                       r'conv\.weight: checkpoint \(64, 48, 3, 3\) vs model '
                       r'\(56, 48, 3, 3\)'):
        model.init_weights()
