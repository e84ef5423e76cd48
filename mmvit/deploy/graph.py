"""Graph mode: deployed backbones run as frozen TorchScript graphs on CPU.

A deployed backbone still runs its forward in Python, one PyTorch call at
a time; on CPU at batch 1 the interpreter and the dispatcher cost about as
much as the arithmetic of the small layers. :func:`to_graph_mode` deploys a
model and puts a :class:`GraphBackbone` in place of each of its mmvit
backbones: for an input on the fast path
(:func:`~mmvit.deploy.kernels.fast_cpu_inference`) it traces the deployed
backbone once per input shape, keeping the fused oneDNN kernels
(:func:`~mmvit.deploy.kernels.capturing_graph`), freezes the trace
(weights become constants, ``torch.jit.freeze``) and runs that graph from
then on. Any other input (autograd, another device or dtype, tracing,
export) runs the deployed backbone itself.

A graph is specific to its input shape, so graph mode suits inputs of a
fixed size (classification, segmentation at a fixed crop, a deployed
detector at one resize); each new shape costs one trace (about a second)
and at most ``max_graphs`` graphs are kept. Graphs hold the weights they
were traced with: moving the model or loading a state dict drops them, and
copies and pickles of the model do not carry them.
"""
import warnings
from collections import OrderedDict

import torch
from torch import nn

from mmvit.models.utils import MMViTBackbone
from mmvit.registry import MODEL_PASSES
from . import switch_to_deploy
from .kernels import capturing_graph, fast_cpu_inference


def frozen_trace(module, x):
    """``module`` traced at the input ``x`` (``torch.jit.trace``, tracer
    warnings silenced) and frozen (``torch.jit.freeze``: weights and other
    tensors it reads become constants), under ``torch.no_grad()``."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        traced = torch.jit.trace(module, x, check_trace=False)
        return torch.jit.freeze(traced.eval())


def _drop_graphs(module, incompatible_keys):
    """After ``load_state_dict``: graphs hold the old weights."""
    module.graphs.clear()


class GraphBackbone(nn.Module):
    """``backbone(x)`` through a frozen graph traced for ``x``'s shape and
    strides where ``x`` takes the fast CPU path, else ``backbone(x)``.

    It shares the backbone's parameters, buffers and submodules (the state
    dict keeps the backbone's keys) and reads its other attributes
    (``out_indices``, ``deployed``, ...) from it.

    Args:
        backbone (MMViTBackbone): a deployed backbone.
        max_graphs (int): graphs kept; the least recently used one is
            dropped beyond that. Default: 4.
    """

    def __init__(self, backbone, max_graphs=4):
        if not isinstance(backbone, MMViTBackbone) or not backbone.deployed:
            raise TypeError(
                'GraphBackbone: expected a deployed mmvit backbone, got '
                f'{type(backbone).__name__}'
                + ('' if not isinstance(backbone, MMViTBackbone) else
                   ' that is not deployed (run switch_to_deploy first)'))
        if max_graphs < 1:
            raise ValueError(f'GraphBackbone: max_graphs must be at least 1, '
                             f'got {max_graphs}')
        super().__init__()
        object.__setattr__(self, 'eager', backbone)
        self._parameters = backbone._parameters
        self._buffers = backbone._buffers
        self._modules = backbone._modules
        self.max_graphs = max_graphs
        self.graphs = OrderedDict()
        self.register_load_state_dict_post_hook(_drop_graphs)
        self.train(False)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(object.__getattribute__(self, 'eager'), name)

    def __getstate__(self):
        # graphs are not copied or pickled; a copy traces its own
        state = self.__dict__.copy()
        state['graphs'] = OrderedDict()
        return state

    def _apply(self, fn, *args, **kwargs):
        self.graphs.clear()
        return super()._apply(fn, *args, **kwargs)

    def train(self, mode=True):
        self.eager.train(mode)
        return super().train(mode)

    def graph_for(self, x):
        """The frozen graph for inputs like ``x``, traced on first use."""
        key = (tuple(x.shape), x.stride())
        graph = self.graphs.get(key)
        if graph is None:
            with torch.no_grad(), capturing_graph():
                # an eager forward first fills the backbone's inference
                # caches (CMT's resized position biases), which the graph
                # then holds as constants instead of recomputing them
                self.eager(x)
                graph = frozen_trace(self.eager, x)
                for _ in range(2):  # the executor optimises after 2 runs
                    graph(x)
            self.graphs[key] = graph
            while len(self.graphs) > self.max_graphs:
                self.graphs.popitem(last=False)
        self.graphs.move_to_end(key)
        return graph

    def forward(self, x):
        if self.training or not fast_cpu_inference(x):
            return self.eager(x)
        return self.graph_for(x)(x)


@MODEL_PASSES.register_module()
def to_graph_mode(model: nn.Module, max_graphs: int = 4) -> nn.Module:
    """Deploy ``model`` (:func:`~mmvit.deploy.switch_to_deploy`) and replace
    each mmvit backbone in it by a :class:`GraphBackbone`; returns the
    model, or the :class:`GraphBackbone` where ``model`` is a backbone."""
    switch_to_deploy(model)
    if isinstance(model, MMViTBackbone):
        return GraphBackbone(model, max_graphs)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, MMViTBackbone):
                setattr(parent, name, GraphBackbone(child, max_graphs))
    return model
