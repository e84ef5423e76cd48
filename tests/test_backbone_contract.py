"""The contract every backbone family keeps, over the family table.

Each test runs for every variant of every family of ``configs/<family>/metafile.yml``
(or its smallest variant, where one is enough): what a dense-prediction
backbone of OpenMMLab promises (shapes at awkward sizes, ``out_indices``,
``frozen_stages``, ``norm_eval``, drop path, pretrained loading and its
errors) and what mmvit adds (deploy equals eval, ``deploy=True`` rebuilds
the deployed structure, export layers equal the eager ones). Per-family
files test only their family's maths.
"""
import copy
import math

import pytest
import torch
from mmcv.cnn.bricks import DropPath
from torch.nn.modules.batchnorm import _BatchNorm

from conftest import randomize
from mmvit.deploy import switch_to_deploy
from mmvit.export import prepare_for_export
from mmvit.families import families, variants
from mmvit.registry import MODELS

VARIANTS = [(f.key, v) for f, v in variants()]
SMALLEST = [(f.key, f.smallest) for f in families().values()]


def build(family, arch, **kwargs):
    return MODELS.get(families()[family].backbone)(arch=arch, **kwargs)


def relative_difference(expected, got):
    assert len(expected) == len(got)
    worst = 0.
    for a, b in zip(expected, got):
        assert a.shape == b.shape
        worst = max(worst, ((a - b).abs().max() / a.abs().max()).item())
    return worst


def indexed(family, arch, key):
    """``key`` of the variant's classifier entry in the model index."""
    (value, ) = [m['Metadata'][key] for m in families()[family].models
                 if m['Config'].endswith(f'imagenet_{family}_{arch}.py')]
    return value


def test_table_matches_the_registry():
    for fam in families().values():
        cls = MODELS.get(fam.backbone)
        assert list(cls.arch_settings) == list(fam.variants), fam.key
        assert fam.smallest in fam.variants
        for variant in fam.variants:
            config = fam.config('retinanet', variant)
            assert any(m['Config'] == config for m in fam.models), config


@pytest.mark.parametrize('family,arch', VARIANTS)
def test_param_count_is_the_indexed_one(family, arch):
    expected = indexed(family, arch, 'Parameters')
    count = sum(p.numel() for p in build(family, arch).parameters())
    assert abs(count - expected) / expected < 0.01, count


@pytest.mark.parametrize('family,arch', VARIANTS)
def test_output_shapes_at_awkward_sizes(family, arch):
    fam = families()[family]
    model = build(family, arch).eval()
    assert model.out_strides == fam.strides
    channels_of = [int(c) for c in indexed(family, arch, 'Channels')]
    assert list(model.out_channels) == channels_of
    for size in [(33, 33), (112, 137)]:
        with torch.no_grad():
            outs = model(torch.rand(2, 3, *size))
        assert isinstance(outs, tuple) and len(outs) == len(fam.strides)
        for out, channels, stride in zip(outs, channels_of, fam.strides):
            assert out.shape == (2, channels, math.ceil(size[0] / stride),
                                 math.ceil(size[1] / stride))
            assert out.is_contiguous() and torch.isfinite(out).all()
    assert [f['num_chs'] for f in model.feature_info] == \
        list(model.out_channels)
    assert [f['reduction'] for f in model.feature_info] == list(fam.strides)


@pytest.mark.parametrize('family,arch', SMALLEST)
def test_out_indices(family, arch):
    fam = families()[family]
    last = len(fam.strides) - 1
    model = build(family, arch, out_indices=(1, -1)).eval()
    assert model.out_indices == (1, last)
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 96, 128))
    assert [o.shape[1] for o in outs] == [model.channels[1],
                                          model.channels[last]]
    assert model.out_strides == (fam.strides[1], fam.strides[last])
    assert [f['index'] for f in model.feature_info] == [1, last]


@pytest.mark.parametrize('family,arch', SMALLEST)
def test_invalid_arguments_name_the_problem(family, arch):
    fam = families()[family]
    cls = MODELS.get(fam.backbone)
    allowed = ', '.join(repr(v) for v in sorted(fam.variants))
    with pytest.raises(ValueError, match=rf"unknown arch 'huge'.*{allowed}"):
        cls('huge')
    arch_dict = dict(cls.arch_settings[arch])
    key = sorted(arch_dict)[0]
    arch_dict.pop(key)
    with pytest.raises(ValueError, match=rf"missing keys \['{key}'\]"):
        cls(arch_dict)
    with pytest.raises(ValueError, match=r"unexpected keys \['width'\]"):
        cls(dict(cls.arch_settings[arch], width=3))
    stages = len(fam.strides)
    with pytest.raises(ValueError, match=f'out_indices entry {stages} is '
                       'out of range'):
        cls(arch, out_indices=(0, stages))
    with pytest.raises(ValueError, match='frozen_stages must be an int in'):
        cls(arch, frozen_stages=stages + 1)
    with pytest.raises(ValueError,
                       match=r'3 channels, got shape \(1, 1, 32, 32\)'):
        cls(arch)(torch.rand(1, 1, 32, 32))
    with pytest.raises(TypeError, match='unexpected keyword'):
        cls(arch, no_such_option=1)


@pytest.mark.parametrize('family,arch', VARIANTS)
def test_drop_path_rises_linearly(family, arch):
    model = build(family, arch, drop_path_rate=0.1)
    total = sum(type(model).arch_settings[arch]['depths'])
    rates = [m.drop_prob for m in model.modules() if isinstance(m, DropPath)]
    # block 0 gets rate 0 (no DropPath module); the others rise to 0.1
    assert rates == pytest.approx([0.1 * j / (total - 1)
                                   for j in range(1, total)])
    model = build(family, arch, drop_path_rate=0.)
    assert not any(isinstance(m, DropPath) for m in model.modules())


@pytest.mark.parametrize('family,arch', SMALLEST)
@pytest.mark.parametrize('frozen', [1, 2])
def test_frozen_stages_survive_train(family, arch, frozen):
    model = build(family, arch, frozen_stages=frozen, norm_eval=False)
    model.train()
    frozen_modules = list(model._stem_modules())
    for i in range(frozen):
        frozen_modules += model._stage_modules(i)
    for module in frozen_modules:
        assert all(not p.requires_grad for p in module.parameters())
        assert all(not m.training for m in module.modules())
    for i in range(frozen, model.num_stages):
        for module in model._stage_modules(i):
            assert all(p.requires_grad for p in module.parameters())
            assert all(m.training for m in module.modules())
    # frozen BatchNorm statistics stay, the others move
    frozen_bns = [m for mod in frozen_modules for m in mod.modules()
                  if isinstance(m, _BatchNorm)]
    moving_bns = [m for i in range(frozen, model.num_stages)
                  for mod in model._stage_modules(i) for m in mod.modules()
                  if isinstance(m, _BatchNorm)]
    before = [m.running_mean.clone() for m in frozen_bns + moving_bns]
    model(torch.rand(2, 3, 96, 96) * 5)
    after = [m.running_mean for m in frozen_bns + moving_bns]
    n = len(frozen_bns)
    assert all(torch.equal(a, b) for a, b in zip(before[:n], after[:n]))
    assert all(not torch.equal(a, b) for a, b in zip(before[n:], after[n:]))


@pytest.mark.parametrize('family,arch', SMALLEST)
def test_norm_eval(family, arch):
    model = build(family, arch, norm_eval=True).train()
    assert model.training
    assert all(not m.training for m in model.modules()
               if isinstance(m, _BatchNorm))
    assert all(p.requires_grad for p in model.parameters())
    model = build(family, arch, norm_eval=False).train()
    assert all(m.training for m in model.modules()
               if isinstance(m, _BatchNorm))


@pytest.mark.parametrize('family,arch', SMALLEST)
def test_with_cp_recomputes_blocks(family, arch):
    """``with_cp=True``: the same outputs and gradients (drop path on, so
    the replayed RNG matters), and far fewer bytes kept for the backward
    pass."""
    results = []
    for with_cp in (False, True):
        torch.manual_seed(0)
        model = build(family, arch, with_cp=with_cp, drop_path_rate=0.2)
        model.train()
        x = torch.randn(2, 3, 96, 128)
        kept = []

        def pack(tensor):
            kept.append(tensor.numel() * tensor.element_size())
            return tensor

        torch.manual_seed(1)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            outs = model(x)
        sum(o.square().mean() for o in outs).backward()
        grads = [p.grad.clone() for p in model.parameters()
                 if p.grad is not None]
        results.append((outs, grads, sum(kept)))
    (outs, grads, kept), (outs_cp, grads_cp, kept_cp) = results
    for a, b in zip(outs, outs_cp):
        torch.testing.assert_close(b, a)
    assert len(grads) == len(grads_cp) > 0
    for a, b in zip(grads, grads_cp):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    assert kept_cp < 0.5 * kept, (family, kept_cp, kept)


@pytest.mark.parametrize('family,arch', SMALLEST)
def test_own_checkpoint_round_trip(family, arch, tmp_path):
    source = randomize(build(family, arch)).eval()
    path = tmp_path / 'detector.pth'
    state = {f'backbone.{k}': v for k, v in source.state_dict().items()}
    state['neck.lateral_convs.0.conv.weight'] = torch.zeros(1)
    torch.save({'state_dict': state, 'meta': {'epoch': 12}}, path)
    model = build(family, arch,
                  init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    x = torch.rand(1, 3, 80, 100)
    with torch.no_grad():
        for a, b in zip(model.eval()(x), source(x)):
            assert torch.isfinite(a).all() and torch.equal(a, b)


@pytest.mark.parametrize('family,arch', SMALLEST)
def test_checkpoints_that_do_not_fit_are_refused(family, arch, tmp_path):
    fam = families()[family]
    missing = tmp_path / 'nope.pth'
    model = build(family, arch,
                  init_cfg=dict(type='Pretrained', checkpoint=str(missing)))
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        model.init_weights()
    other = fam.variants[-1]
    path = tmp_path / 'other.pth'
    torch.save({'state_dict': build(family, other).state_dict()}, path)
    model = build(family, arch,
                  init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(ValueError, match='another variant'):
        model.init_weights()
    stranger = next(f for f in families().values() if f.key != family)
    path = tmp_path / 'stranger.pth'
    torch.save(build(stranger.key, stranger.smallest).state_dict(), path)
    model = build(family, arch,
                  init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(ValueError, match='does not fit|none of its keys'):
        model.init_weights()


@pytest.mark.parametrize('family,arch', VARIANTS)
def test_deployed_equals_eval(family, arch):
    model = randomize(build(family, arch)).eval()
    x = torch.rand(1, 3, 65, 47)
    with torch.no_grad():
        expected = model(x)
        deployed = switch_to_deploy(copy.deepcopy(model))
        assert deployed.deploy and not deployed.training
        assert switch_to_deploy(deployed) is deployed  # idempotent
        got = deployed(x)
    assert relative_difference(expected, got) < 1e-4
    deployed.train()
    with pytest.raises(RuntimeError, match='eval mode only'):
        deployed(x)


@pytest.mark.parametrize('family,arch', SMALLEST)
def test_deploy_argument_builds_the_deployed_structure(family, arch):
    model = randomize(build(family, arch)).eval()
    deployed = switch_to_deploy(copy.deepcopy(model))
    rebuilt = build(family, arch, deploy=True)
    assert rebuilt.deploy and not rebuilt.training
    ours = {k: v.shape for k, v in rebuilt.state_dict().items()}
    assert ours == {k: v.shape for k, v in deployed.state_dict().items()}
    assert [type(m).__name__ for m in rebuilt.modules()] == \
        [type(m).__name__ for m in deployed.modules()]
    rebuilt.load_state_dict(deployed.state_dict(), strict=True)
    x = torch.rand(1, 3, 96, 80)
    with torch.no_grad():
        for a, b in zip(rebuilt(x), deployed(x)):
            assert torch.equal(a, b)


@pytest.mark.parametrize('family,arch', SMALLEST)
@pytest.mark.parametrize('deploy', [False, True], ids=['eval', 'deployed'])
def test_export_layers_equal_eager(family, arch, deploy):
    model = randomize(build(family, arch)).eval()
    if deploy:
        switch_to_deploy(model)
    exported = prepare_for_export(copy.deepcopy(model))
    for size in [(97, 203), (40, 72)]:
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            assert relative_difference(model(x), exported(x)) < 1e-5


@pytest.mark.parametrize('family,arch', SMALLEST)
def test_weights_written_through_data_are_used_at_once(family, arch):
    """An eval model whose weights change through ``.data`` (as mmdet's
    ``MeanTeacherHook`` and mmengine's ``EMAHook`` update a teacher)
    computes what a fresh model holding the same weights computes: nothing
    derived from a parameter is kept between forwards."""
    torch.manual_seed(0)
    model = randomize(build(family, arch)).eval()
    x = torch.rand(1, 3, 97, 131)  # sizes where biases are resized/gathered
    with torch.no_grad():
        model(x)
        for param in model.parameters():
            param.data.copy_(torch.randn_like(param) * 0.05 + param.data)
        got = model(x)
        fresh = build(family, arch).eval()
        fresh.load_state_dict(model.state_dict())
        expected = fresh(x)
    for a, b in zip(expected, got):
        assert torch.equal(a, b)
