"""switch_to_deploy on every family: same eval outputs, no foldable
BatchNorm left, no training-only branch."""
import copy

import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from conftest import randomize
from mmvit.deploy import switch_to_deploy
from mmvit.families import families
from mmvit.models import CASViT, CastlingViT, CMT
from mmvit.registry import MODELS
from mmvit.models.backbones.castling_vit import LinearAngularAttention
from mmvit.models.layers import ConvNormAct

def has_foldable_norm(layer):
    """A ConvNormAct whose BatchNorm directly follows its conv."""
    return list(layer._modules)[1:2] == ['bn'] and isinstance(layer.bn,
                                                             _BatchNorm)


FAMILIES = [(MODELS.get(f.backbone), f.smallest)
            for f in families().values()]


def max_relative_difference(expected, got):
    assert len(expected) == len(got)
    diffs = []
    for a, b in zip(expected, got):
        assert a.shape == b.shape
        diffs.append(((a - b).abs().max() / a.abs().max()).item())
    return max(diffs)


def deployable_eval_model(family, arch):
    """``family(arch)`` with random weights, in eval mode (Castling-ViT with
    its auxiliary softmax factor at 1; the branch runs in training only).
    CAS-ViT's token mixers get 8x larger projection weights: with the
    small random ones a mixer adds about 1e-6 to its block, so an error in
    the deployed mixer would hide under the tolerance."""
    model = randomize(family(arch)).eval()
    if isinstance(model, CastlingViT):
        model.set_aux_factor(1.)
    with torch.no_grad():
        for mixer in (m for m in model.modules()
                      if type(m).__name__ == 'AdditiveTokenMixer'):
            for layer in (mixer.qkv, mixer.dwc, mixer.proj):
                layer.weight.mul_(8)
    return model


@pytest.mark.parametrize('family, arch', FAMILIES,
                         ids=[f[0].__name__ for f in FAMILIES])
def test_deployed_outputs_equal_eval_outputs(family, arch):
    model = deployable_eval_model(family, arch)
    x = torch.rand(2, 3, 96, 80)
    with torch.no_grad():
        expected = model(x)
        deployed = switch_to_deploy(copy.deepcopy(model))
        got = deployed(x)
    assert max_relative_difference(expected, got) < 1e-4
    before = [m for m in model.modules()
              if isinstance(m, ConvNormAct) and has_foldable_norm(m)]
    after = [m for m in deployed.modules()
             if isinstance(m, ConvNormAct) and has_foldable_norm(m)]
    assert not after  # every conv-BN pair folded
    bns = [sum(isinstance(m, _BatchNorm) for m in net.modules())
           for net in (model, deployed)]
    # Castling-ViT has no BatchNorm; the others lose one per folded pair;
    # CAS-ViT also its pre-norms (see the test below), CMT the BatchNorm
    # after each IRFFN's activation (folded into the 1x1 projection)
    assert bns[0] - bns[1] >= len(before)
    if family is CMT:
        irffns = [m for m in model.modules() if type(m).__name__ == 'IRFFN']
        assert bns[0] - bns[1] == len(before) + len(irffns)
    elif family is not CASViT:
        assert bns[0] - bns[1] == len(before)
    assert bool(before) == (family is not CastlingViT)


def test_deployed_cas_vit_folds_every_batchnorm_next_to_a_conv():
    model = randomize(CASViT('xs')).eval()
    deployed = switch_to_deploy(copy.deepcopy(model))
    # only the four output norms stay: they follow a residual sum and
    # nothing follows them inside the backbone
    assert [name for name, m in deployed.named_modules()
            if isinstance(m, _BatchNorm)] == [f'norm{i}' for i in range(4)]
    blocks = [m for m in model.modules() if type(m).__name__ == 'CASBlock']
    bns = [sum(isinstance(m, _BatchNorm) for m in net.modules())
           for net in (model, deployed)]
    # per block: local integration, two gates, norm1, norm2
    assert bns[0] - bns[1] == 5 * len(blocks) + 2 + 3  # stem, downsamples
    x = torch.rand(2, 3, 65, 47)
    with torch.no_grad():
        assert max_relative_difference(model(x), deployed(x)) < 1e-4


def test_switch_to_deploy_calls_each_module_once_innermost_first():
    calls = []

    class Leaf(nn.Module):
        def switch_to_deploy(self):
            calls.append(self)

    outer, inner = Leaf(), Leaf()
    outer.inner = inner
    model = nn.Sequential(outer).train()
    assert switch_to_deploy(model) is model and not model.training
    assert calls == [inner, outer]


def test_deployed_cas_vit_refuses_training():
    deployed = switch_to_deploy(CASViT('xs'))
    assert not deployed.training
    switch_to_deploy(deployed)  # idempotent
    deployed.train()
    with pytest.raises(RuntimeError, match='eval mode only'):
        deployed(torch.rand(1, 3, 64, 64))


def test_deploy_leaves_cas_vit_blocks_with_other_norms_unchanged():
    model = randomize(CASViT('xs', norm_cfg=dict(type='GN',
                                                 num_groups=4))).eval()
    deployed = switch_to_deploy(copy.deepcopy(model))
    assert not any(m.deploy for m in deployed.stages.modules()
                   if type(m).__name__ == 'CASBlock')
    x = torch.rand(1, 3, 64, 48)
    with torch.no_grad():
        assert max_relative_difference(model(x), deployed(x)) < 1e-4


def test_deployed_castling_never_runs_the_softmax_branch():
    model = switch_to_deploy(CastlingViT('xs'))
    model.train()  # even in training mode
    assert all(not m.uses_aux_branch() for m in model.modules()
               if isinstance(m, LinearAngularAttention))


def test_deployed_checkpoint_rebuilds_from_its_config(tmp_path):
    """tools/deployment/deploy_checkpoint.py saves the deployed detector;
    the config with model.backbone.deploy=True loads it strictly and
    predicts what the deployed model predicts."""
    import os.path as osp

    from conftest import ROOT
    from mmvit.utils.config import build_model, load_config
    from tools.deployment.deploy_checkpoint import main
    config = osp.join(ROOT, 'configs', 'cas_vit', 'retinanet_cas_vit_xs.py')
    cfg = load_config(config)
    cfg.model.backbone.init_cfg = None
    trained = randomize(build_model(cfg)).eval()
    source = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': trained.state_dict(), 'meta': {}}, source)
    out = tmp_path / 'deployed.pth'
    main([config, str(source), str(out)])
    saved = torch.load(out, weights_only=True)
    assert saved['meta']['deployed']

    rebuilt_cfg = load_config(config, cfg_options={
        'model.backbone.deploy': True, 'model.backbone.init_cfg': None})
    rebuilt = build_model(rebuilt_cfg)
    assert rebuilt.backbone.deploy
    rebuilt.load_state_dict(saved['state_dict'], strict=True)
    x = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        expected = switch_to_deploy(trained)._forward(x)
        got = rebuilt.eval()._forward(x)
    for a, b in zip(sum(map(list, expected), []), sum(map(list, got), [])):
        assert torch.equal(a, b)
    with pytest.raises(SystemExit):  # OUT exists: nothing is overwritten
        main([config, str(source), str(out)])
