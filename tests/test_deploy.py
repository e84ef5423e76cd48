"""switch_to_deploy on every family: same eval outputs, no foldable
BatchNorm left, no training-only branch."""
import copy

import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from conftest import randomize
from mmvit.deploy import kernels, switch_to_deploy
from mmvit.deploy.cas_vit import DeployedCASBlock
from mmvit.deploy.fold import has_foldable_norm
from mmvit.deploy.kernels import fast_cpu_inference
from mmvit.families import families
from mmvit.models import CASViT, CastlingViT, CMT, EfficientViT
from mmvit.registry import MODELS
from mmvit.models.backbones.castling_vit import LinearAngularAttention
from mmvit.models.layers import ConvNormAct

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


@pytest.fixture
def onednn_calls(monkeypatch):
    """Counts the fused oneDNN kernels the deploy kernels run (convolutions
    and the row products of 1x1 convolutions)."""
    calls = []

    class Counting:
        def __init__(self, real):
            self.real = real

        def __call__(self, *args):
            calls.append('unary')
            return self.real(*args)

        def binary(self, *args):
            calls.append('binary')
            return self.real.binary(*args)

    for name in ('_ONEDNN_POINTWISE', '_ONEDNN_LINEAR'):
        real = getattr(kernels, name)
        if real is not None:
            monkeypatch.setattr(kernels, name, Counting(real))
    return calls


@pytest.mark.parametrize('post', ['none', 'gelu', 'add'])
def test_fused_1x1_convolution_of_channels_last_rows(post, onednn_calls):
    conv = nn.Conv2d(24, 40, 1)
    act = nn.GELU() if post == 'gelu' else None
    cl = torch.channels_last
    x = torch.randn(2, 24, 7, 5).contiguous(memory_format=cl)
    other = torch.randn(2, 40, 7, 5).contiguous(memory_format=cl) \
        if post == 'add' else None
    binary = 'add' if post == 'add' else None
    with torch.no_grad():
        expected = conv(x)
        expected = act(expected) if act else expected
        expected = expected + other if other is not None else expected
        got = kernels.fused_conv(x, conv, act, other, binary, fused=True)
        # an NCHW-contiguous input takes the convolution kernel instead
        plain = kernels.fused_conv(x.contiguous(), conv, act,
                                   other, binary, fused=True)
    assert got.shape == expected.shape and got.is_contiguous(memory_format=cl)
    assert max_relative_difference((expected, ), (got, )) < 1e-5
    assert max_relative_difference((expected, ), (plain, )) < 1e-5
    if kernels._ONEDNN_LINEAR is not None:
        assert kernels._pointwise_rows(conv, x, other)
        assert not kernels._pointwise_rows(conv, x.contiguous(), other)
        assert len(onednn_calls) == 2


def test_norm_in_place_overwrites_its_input_with_the_eval_norm():
    norm = randomize(nn.BatchNorm2d(6)).eval()
    x = torch.randn(2, 6, 5, 4).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = norm(x)
        kept = x.clone()
        assert kernels.norm_in_place(kept, norm) is not kept  # not fused
        out = kernels.norm_in_place(x, norm, fused=True)
    assert out.data_ptr() == x.data_ptr()
    assert max_relative_difference((expected, ), (out, )) < 1e-6
    group_norm = nn.GroupNorm(2, 6)  # not a BatchNorm: runs as it is
    y = torch.randn(2, 6, 5, 4)
    with torch.no_grad():
        assert torch.equal(kernels.norm_in_place(y.clone(), group_norm,
                                                 fused=True), group_norm(y))


@pytest.mark.parametrize('size', [(96, 80), (65, 47)], ids=str)
def test_deployed_cas_vit_folds_every_batchnorm_next_to_a_conv(
        size, onednn_calls):
    model = randomize(CASViT('xs')).eval()
    deployed = switch_to_deploy(copy.deepcopy(model))
    # only the four output norms stay: they follow a residual sum and
    # nothing follows them inside the backbone
    assert [name for name, m in deployed.named_modules()
            if isinstance(m, _BatchNorm)] == [f'norm{i}' for i in range(4)]
    assert not any(isinstance(m, ConvNormAct) and 'bn' in m._modules
                   for m in deployed.modules())
    blocks = [m for m in model.modules()
              if type(m).__name__ == 'CASBlock']
    bns = [sum(isinstance(m, _BatchNorm) for m in net.modules())
           for net in (model, deployed)]
    # per block: local integration, two gates, norm1, norm2
    assert bns[0] - bns[1] == 5 * len(blocks) + 2 + 3  # stem, downsamples
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        expected = model(x)
        # on CPU: channels-last, oneDNN post-ops (where PyTorch has oneDNN)
        assert fast_cpu_inference(x) == torch.backends.mkldnn.is_available()
        fused = deployed(x)
    if torch.backends.mkldnn.is_available():
        # per block 11 oneDNN kernels (3 local integration, 6 token
        # mixer, 2 MLP), of which the two residual sums after dense ones
        # are binary post-ops; the two stem convolutions
        assert len(onednn_calls) == 11 * len(blocks) + 2
        assert onednn_calls.count('binary') == 2 * len(blocks)
    onednn_calls.clear()
    assert not fast_cpu_inference(x)
    plain = deployed(x)  # autograd on: the portable path
    assert not onednn_calls
    assert all(out.is_contiguous() for out in fused)
    assert max_relative_difference(expected, fused) < 1e-4
    assert max_relative_difference(expected, plain) < 1e-4


@pytest.mark.parametrize('size', [(96, 80), (289, 353)], ids=str)
def test_deployed_efficientvit_runs_channels_last_on_cpu(size, onednn_calls):
    # 289x353: stage maps 19x23, 10x12, 5x6, so the first two attend in
    # zero-padded windows and the last as a whole
    model = randomize(EfficientViT('m1')).eval()
    deployed = switch_to_deploy(copy.deepcopy(model))
    assert deployed.deployed and switch_to_deploy(deployed) is deployed
    names = {type(m).__name__ for m in deployed.modules()}
    assert {'DeployedStem', 'DeployedEfficientViTStage',
            'DeployedEfficientViTBlock', 'DeployedLocalWindowAttention',
            'DeployedCascadedGroupAttention', 'DeployedPatchMerging'} <= names
    assert not names & {'EfficientViTBlock', 'LocalWindowAttention',
                        'CascadedGroupAttention', 'PatchMerging', 'FFN'}
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        expected = model(x)
        fast = deployed(x)
    if torch.backends.mkldnn.is_available():
        # 4 stem convs; per block 2 dw convs and one query conv per head;
        # per downsampling 2 ConvFFN dw convs and the strided dw conv
        blocks = [m for m in deployed.modules()
                  if type(m).__name__ == 'DeployedEfficientViTBlock']
        heads = sum(len(b.mixer.attn.dws) for b in blocks)
        assert len(onednn_calls) == 4 + 2 * len(blocks) + heads + 3 * 2
    onednn_calls.clear()
    plain = deployed(x)  # autograd on: the same layers, plain operations
    assert not onednn_calls
    assert all(out.is_contiguous() for out in fast)
    assert max_relative_difference(expected, fast) < 1e-4
    assert max_relative_difference(expected, plain) < 1e-4


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
    assert not any(isinstance(m, DeployedCASBlock)
                   for m in deployed.stages.modules())
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
    config = osp.join(ROOT, 'configs', 'retinanet_cas_vit_xs.py')
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
    assert rebuilt.backbone.deployed
    rebuilt.load_state_dict(saved['state_dict'], strict=True)
    x = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        expected = switch_to_deploy(trained)._forward(x)
        got = rebuilt.eval()._forward(x)
    for a, b in zip(sum(map(list, expected), []), sum(map(list, got), [])):
        assert torch.equal(a, b)
    with pytest.raises(SystemExit):  # OUT exists: nothing is overwritten
        main([config, str(source), str(out)])
