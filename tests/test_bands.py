"""Large maps go through the position-wise layers in bands of rows
(:func:`mmvit.models.layers.row_bands`, :func:`project_parts`): the same
outputs and gradients as in one piece."""
import pytest
import torch

from conftest import randomize
from mmvit.models import layers
from mmvit.registry import MODELS


@pytest.mark.parametrize('family', ['CASViT', 'CastlingViT'])
def test_bands_compute_what_one_piece_computes(family, monkeypatch):
    torch.manual_seed(0)
    model = randomize(MODELS.get(family)(arch='xs'))
    x = torch.randn(2, 3, 92, 120, requires_grad=True)

    state = {k: v.clone() for k, v in model.state_dict().items()}

    def run(train):
        model.load_state_dict(state)  # training updates BatchNorm statistics
        model.train(train)
        torch.manual_seed(1)  # the same drop-path draws
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
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
        if grad_a is not None:
            torch.testing.assert_close(grad_b, grad_a, rtol=1e-4, atol=1e-6)


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
