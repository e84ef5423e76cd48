"""switch_to_deploy on every family: same eval outputs, no foldable
BatchNorm left, no training-only branch."""
import copy

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from conftest import randomize
from mmvit.deploy import switch_to_deploy
from mmvit.models import CASViT, CastlingViT, CMT, EfficientViT
from mmvit.models.backbones.castling_vit import LinearAngularAttention
from mmvit.models.layers import ConvNormAct

FAMILIES = [(CASViT, 'xs'), (CMT, 'ti'), (EfficientViT, 'm0'),
            (CastlingViT, 'xs')]


@pytest.mark.parametrize('family, arch', FAMILIES,
                         ids=[f[0].__name__ for f in FAMILIES])
def test_deployed_outputs_equal_eval_outputs(family, arch):
    model = randomize(family(arch)).eval()
    if isinstance(model, CastlingViT):
        model.set_aux_factor(1.)
    x = torch.rand(2, 3, 96, 80)
    with torch.no_grad():
        expected = model(x)
        deployed = switch_to_deploy(copy.deepcopy(model))
        got = deployed(x)
    for a, b in zip(expected, got):
        assert ((a - b).abs().max() / a.abs().max()).item() < 1e-4
    before = [m for m in model.modules()
              if isinstance(m, ConvNormAct) and m.fusable]
    after = [m for m in deployed.modules()
             if isinstance(m, ConvNormAct) and m.fusable]
    assert not after  # every conv-BN pair folded
    bns = [sum(isinstance(m, _BatchNorm) for m in net.modules())
           for net in (model, deployed)]
    # Castling-ViT has no BatchNorm; the others lose one per folded pair
    assert bns[0] - bns[1] == len(before)
    assert bool(before) == (family is not CastlingViT)


def test_deployed_castling_never_runs_the_softmax_branch():
    model = switch_to_deploy(CastlingViT('xs'))
    model.train()  # even in training mode
    assert all(not m.uses_aux_branch() for m in model.modules()
               if isinstance(m, LinearAngularAttention))
