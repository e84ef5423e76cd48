"""Large maps go through the position-wise layers in bands of rows
(:func:`mmvit.models.layers.row_bands`, :func:`project_parts`): the same
outputs and gradients as in one piece."""
import math

import pytest
import torch

from conftest import randomize
from mmvit.models import layers
from mmvit.registry import MODELS


@pytest.mark.parametrize('family, kwargs', [
    # CAS-ViT's blocks and stem in bands in eval (inference), whole while
    # training
    ('CASViT', {}),
    ('CastlingViT', {}),
    # the attention in bands also while training (no auxiliary softmax),
    # with either depthwise residual
    ('CastlingViT', dict(aux_softmax=False)),
    ('CastlingViT', dict(aux_softmax=False, res_conv='token1d')),
])
def test_bands_compute_what_one_piece_computes(family, kwargs, monkeypatch):
    torch.manual_seed(0)
    # float64: a band's sums are added in another order, which float32
    # rounds differently (about 1e-4 of the outputs after four stages)
    model = randomize(MODELS.get(family)(arch='xs', **kwargs)).double()
    x = torch.randn(2, 3, 92, 120, dtype=torch.float64, requires_grad=True)

    state = {k: v.clone() for k, v in model.state_dict().items()}

    def run(train):
        model.load_state_dict(state)  # training updates BatchNorm statistics
        model.train(train)
        torch.manual_seed(1)  # the same drop-path draws
        with torch.set_grad_enabled(train):
            outs = model(x)
        if not train:
            return [o.detach() for o in outs], None
        x.grad = None
        sum(o.square().mean() for o in outs).backward()
        return [o.detach() for o in outs], x.grad.clone()

    whole = run(False), run(True)
    # a 23x30 stage-1 map of 32+ channels: 4 KiB bands are 1-row bands
    assert len(layers.row_bands(2, 32, 23, 30)) == 1
    monkeypatch.setattr(layers, 'BAND_BYTES', 4096)
    assert len(layers.row_bands(2, 32, 23, 30)) == 23
    banded = run(False), run(True)
    for (outs_a, grad_a), (outs_b, grad_b) in zip(whole, banded):
        for a, b in zip(outs_a, outs_b):
            assert a.abs().max() > 0.1
            torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-11)
        if grad_a is not None:
            torch.testing.assert_close(grad_b, grad_a, rtol=1e-9,
                                       atol=1e-12)


def test_cas_vit_bands_only_in_inference_with_position_wise_norms(
        monkeypatch):
    """CAS-ViT's blocks and stem compute a large map in bands where
    autograd does not record, every BatchNorm uses running statistics and
    drop path draws nothing; in one piece where gradients are recorded, a
    norm takes statistics of the map (training BatchNorm, GroupNorm) or
    drop path draws per sample."""
    from mmvit.models.backbones import cas_vit
    calls = {'block': [], 'stem': []}
    in_block = []  # the watched block is running
    for module, key in ((cas_vit, 'block'), (layers, 'stem')):
        real = module.in_bands
        monkeypatch.setattr(module, 'in_bands', lambda fn, bands, real=real,
                            key=key: (calls[key].append(len(bands))
                                      if key == 'stem' or in_block else None,
                                      real(fn, bands))[1])
    monkeypatch.setattr(layers, 'BAND_BYTES', 4096)
    x = torch.randn(1, 3, 64, 64)
    gn = dict(type='GN', num_groups=4)
    frozen = dict(norm_eval=True)
    # kwargs, training, gradients, the last stage-1 block in bands, the
    # stem in bands
    for kwargs, train, grad, block_banded, stem_banded in (
            ({}, False, False, True, True), ({}, False, True, False, False),
            ({}, True, False, False, False),
            (frozen, True, False, True, True),
            (frozen, True, True, False, False),
            (dict(frozen, drop_path_rate=.1), True, False, False, True),
            (dict(norm_cfg=gn), False, False, False, False)):
        model = cas_vit.CASViT('xs', **kwargs).train(train)
        block = model.stages[0].blocks[-1]  # a 16x16 map of 48 channels
        block.register_forward_pre_hook(lambda *_: in_block.append(1))
        block.register_forward_hook(lambda *_: in_block.clear())
        for record in calls.values():
            record.clear()
        with torch.set_grad_enabled(grad):
            model(x)
        # the block calls in_bands with its bands or with one band, the
        # stem only with bands
        assert len(calls['block']) == 3, calls
        case = kwargs, train, grad
        assert (max(calls['block']) > 1) == block_banded, case
        assert bool(calls['stem']) == stem_banded, case


def test_conv_stem_in_bands_computes_what_one_piece_computes(monkeypatch):
    """Each band of a strided stem reads exactly the input rows its
    convolutions need, with zeros for the padding at the map's edges."""
    torch.manual_seed(0)
    stem = layers.ConvStem(
        layers.ConvNormAct(3, 8, 3, stride=2, padding=1,
                           act_cfg=dict(type='ReLU')),
        layers.ConvNormAct(8, 8, 5, padding=2, act_cfg=dict(type='GELU'),
                           act_first=True),
        layers.ConvNormAct(8, 16, 3, stride=2, padding=1))
    stem = randomize(stem).double().eval()
    calls = []
    real = layers.in_bands
    monkeypatch.setattr(layers, 'in_bands', lambda fn, bands: (
        calls.append(len(bands)), real(fn, bands))[1])
    for height in (61, 64, 66):
        x = torch.randn(2, 3, height, 37, dtype=torch.float64)
        with torch.no_grad():  # inference: bands where the map is large
            whole = stem(x)
            monkeypatch.setattr(layers, 'BAND_BYTES', 4096)
            banded = stem(x)
            monkeypatch.setattr(layers, 'BAND_BYTES', 8 << 20)
        assert whole.shape[2:] == (math.ceil(height / 4), 10)
        assert calls.pop() > 3
        torch.testing.assert_close(banded, whole, rtol=1e-12, atol=1e-12)


def test_project_parts_splits_the_projection(monkeypatch):
    torch.manual_seed(0)
    linear, conv = torch.nn.Linear(8, 24), torch.nn.Conv2d(8, 24, 1)
    tokens, fmap = torch.randn(2, 50, 8), torch.randn(2, 8, 5, 10)
    monkeypatch.setattr(layers, 'BAND_BYTES', 64)
    for layer, x, dim in ((linear, tokens, -1), (conv, fmap, 1)):
        parts = layers.project_parts(layer, x, 3, dim)
        for part, expected in zip(parts, layer(x).chunk(3, dim)):
            assert part.is_contiguous()
            torch.testing.assert_close(part, expected)


@pytest.mark.parametrize('batch', [1, 2])
def test_deployed_cas_vit_blocks_in_bands_equal_eval(batch, monkeypatch):
    """The deployed CAS-ViT block computes large maps in bands of rows,
    each reading the rows its 3x3 convolutions need around it, with the
    channel gates' means between two passes: the eval outputs, on the fused
    CPU path and on the portable one (autograd on)."""
    import copy

    from mmvit.deploy import cas_vit as deployed_cas_vit
    from mmvit.deploy import switch_to_deploy
    from test_deploy import deployable_eval_model
    torch.manual_seed(0)
    # token-mixer weights large enough that an error in a band's halo rows
    # shows (test_deploy.deployable_eval_model)
    model = deployable_eval_model(MODELS.get('CASViT'), 'xs')
    deployed = switch_to_deploy(copy.deepcopy(model))
    x = torch.randn(batch, 3, 92, 120)
    with torch.no_grad():
        expected = model(x)
        whole = deployed(x)  # one band per block
    # 23x30 stage-1 maps of 48 channels: 48 KiB bands of 8 rows (and the
    # last of 7), bands of 4 and 2 rows in later stages
    monkeypatch.setattr(layers, 'BAND_BYTES', 48 * 1024 * batch)
    assert layers.row_bands(batch, 48, 23, 30) == [(0, 8), (8, 16),
                                                   (16, 23)]
    calls = []
    real = deployed_cas_vit.in_bands
    monkeypatch.setattr(deployed_cas_vit, 'in_bands', lambda fn, bands: (
        calls.append(len(bands)), real(fn, bands))[1])
    with torch.no_grad():
        fused = deployed(x)
    assert max(calls) == 3
    # the same kernels on the same rows as in one piece: a row missing
    # from a band's halo shows far above float rounding
    for a, b in zip(whole, fused):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)
    plain = deployed(x)  # autograd on: the portable path
    for got in (fused, plain):
        for a, b in zip(expected, got):
            assert a.abs().max() > 0.1
            torch.testing.assert_close(b.detach(), a, rtol=1e-4, atol=1e-5)


def test_row_bands_are_as_few_and_even_as_the_budget_allows():
    # 96 channels of 256 columns: 8 MiB hold 85 rows, so four bands of 64
    assert layers.row_bands(1, 96, 256, 256) == [
        (0, 64), (64, 128), (128, 192), (192, 256)]
    assert layers.row_bands(1, 96, 128, 128) == [(0, 128)]
    assert layers.row_bands(1, 10 ** 9, 5, 7) == [(r, r + 1) for r in range(5)]


def test_row_bands_shrink_for_layers_with_several_temporaries():
    # (1, 64, 256, 256) float32: 16 MiB; 8 MiB bands -> 2, 2 MiB -> 8
    assert layers.row_bands(1, 64, 256, 256) == [(0, 128), (128, 256)]
    bands = layers.row_bands(1, 64, 256, 256, temporaries=4)
    assert bands == [(r, r + 32) for r in range(0, 256, 32)]
    # a map within the bound stays whole
    assert layers.row_bands(1, 64, 64, 64, temporaries=4) == [(0, 64)]
