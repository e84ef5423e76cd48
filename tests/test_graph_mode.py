"""Graph mode (mmvit.deploy.graph): deployed backbones as frozen
TorchScript graphs on CPU, the same outputs as eval."""
import copy
import pickle

import pytest
import torch
from torch import nn

from conftest import randomize
from mmvit.deploy import GraphBackbone, kernels, switch_to_deploy
from mmvit.deploy import to_graph_mode
from mmvit.families import families
from mmvit.models import CASViT, CMT
from mmvit.registry import MODELS
from test_deploy import deployable_eval_model, max_relative_difference

FAMILIES = [(MODELS.get(f.backbone), f.smallest)
            for f in families().values()]


def graph_kinds(graph):
    return {node.kind() for node in graph.graph.nodes()}


@pytest.mark.parametrize('family, arch', FAMILIES,
                         ids=[f[0].__name__ for f in FAMILIES])
def test_graph_outputs_equal_eval_outputs(family, arch):
    model = deployable_eval_model(family, arch)
    graph = to_graph_mode(copy.deepcopy(model))
    assert isinstance(graph, GraphBackbone)
    for shape in [(1, 3, 96, 80), (2, 3, 64, 64), (1, 3, 96, 80)]:
        x = torch.rand(*shape)
        with torch.no_grad():
            expected = model(x)
            got = graph(x)
        assert isinstance(got, tuple)
        assert max_relative_difference(expected, got) < 1e-4
    assert len(graph.graphs) == 2  # one per input shape, reused
    if family is CMT:
        # the position biases resized for these grids are constants of
        # the graphs, not interpolated on every call
        for traced in graph.graphs.values():
            assert 'aten::upsample_bicubic2d' not in graph_kinds(traced)
    if kernels._ONEDNN_POINTWISE is not None and family is CASViT:
        # the fused oneDNN convolutions are part of the traced graph
        (traced, ) = list(graph.graphs.values())[:1]
        assert 'mkldnn::_convolution_pointwise' in graph_kinds(traced)
        if kernels._ONEDNN_LINEAR is not None:
            # and the 1x1 convolutions as products of channels-last rows
            assert 'mkldnn::_linear_pointwise' in graph_kinds(traced)


def test_graph_mode_runs_the_deployed_backbone_off_the_fast_path():
    model = randomize(CASViT('xs')).eval()
    graph = to_graph_mode(copy.deepcopy(model))
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    got = graph(x)  # autograd on: no graph
    assert not graph.graphs
    got[-1].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with torch.no_grad():
        expected = model(x)
        graph(x.detach())
    assert len(graph.graphs) == 1
    assert max_relative_difference(expected, got) < 1e-4


def test_graph_mode_keeps_state_dict_keys_and_drops_stale_graphs():
    model = randomize(CASViT('xs')).eval()
    deployed = switch_to_deploy(copy.deepcopy(model))
    graph = to_graph_mode(copy.deepcopy(model))
    assert graph.state_dict().keys() == deployed.state_dict().keys()
    assert graph.out_indices == deployed.out_indices and graph.deployed
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = graph(x)
        state = {k: v * 0.5 if v.is_floating_point() else v
                 for k, v in deployed.state_dict().items()}
        graph.load_state_dict(state)
        assert not graph.graphs  # traced with the old weights: dropped
        deployed.load_state_dict(state)
        after = graph(x)
        assert max_relative_difference(deployed(x), after) < 1e-4
        assert max_relative_difference(before, after) > 1e-2


def test_graph_mode_keeps_at_most_max_graphs():
    graph = to_graph_mode(randomize(CASViT('xs')).eval(), max_graphs=2)
    with torch.no_grad():
        for size in (32, 64, 96, 64):
            graph(torch.rand(1, 3, size, size))
    shapes = [key[0] for key in graph.graphs]
    assert shapes == [(1, 3, 96, 96), (1, 3, 64, 64)]  # 32 dropped first
    for clone in (copy.deepcopy(graph),
                  pickle.loads(pickle.dumps(graph))):
        assert not clone.graphs  # a copy traces its own graphs
        x = torch.rand(1, 3, 64, 64)
        with torch.no_grad():
            assert max_relative_difference(graph(x), clone(x)) < 1e-4
        assert len(clone.graphs) == 1 and len(graph.graphs) == 2
        assert clone.eager is not graph.eager
        assert clone.stages is clone.eager.stages


def test_graph_mode_replaces_the_backbone_of_a_whole_model():
    backbone = randomize(CASViT('xs')).eval()
    model = nn.Sequential()
    model.add_module('backbone', backbone)
    model.add_module('head', nn.Identity())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = backbone(x)
        to_graph_mode(model)
        assert isinstance(model.backbone, GraphBackbone)
        got = model(x)
    assert max_relative_difference(expected, got) < 1e-4
    with pytest.raises(RuntimeError, match='eval mode only'):
        model.train()(x)


def test_graph_backbone_names_what_it_needs():
    with pytest.raises(TypeError, match='not deployed'):
        GraphBackbone(CASViT('xs'))
    with pytest.raises(TypeError, match='deployed mmvit backbone'):
        GraphBackbone(nn.Conv2d(3, 3, 1))
    deployed = switch_to_deploy(CASViT('xs'))
    with pytest.raises(ValueError, match='max_graphs'):
        GraphBackbone(deployed, max_graphs=0)


def test_init_inferencer_names_the_allowed_deploy_modes():
    from mmvit.apis.inference import init_inferencer
    with pytest.raises(ValueError, match="allowed: False, True, 'graph'"):
        init_inferencer('configs/imagenet_cas_vit_xs.py', deploy='fold')


def test_deploy_hook_switches_to_graph_mode():
    """What tools/test.py --graph-mode adds to the config's hooks."""
    from types import SimpleNamespace

    from mmvit.engine import DeployHook
    model = nn.Sequential()
    model.add_module('backbone', randomize(CASViT('xs')))
    DeployHook(graph=True).before_test(SimpleNamespace(model=model))
    assert isinstance(model.backbone, GraphBackbone)
    model.backbone = randomize(CASViT('xs'))
    DeployHook().before_test(SimpleNamespace(model=model))
    assert type(model.backbone) is CASViT and model.backbone.deployed
