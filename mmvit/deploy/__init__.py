"""Deployment: inference structures swapped in by one pass.

``switch_to_deploy(model)`` puts ``model`` in eval mode and walks it from
the top: each module whose type has a deploy rule is replaced by what the
rule returns (folded, merged, or an inference module of this package with
its own forward), then the walk goes on inside the result. The pass knows
no family: each family's rules live in its own module here
(:mod:`mmvit.deploy.cas_vit`, ...), registered with :func:`deploy_rule`.

Vocabulary, the same for every family:

* *deployed*: ``backbone.deployed`` is True after the pass; a deployed
  backbone runs in eval mode only (its BatchNorm statistics are folded
  away) and its state dict has the folded layout, which
  ``deploy=True`` in the backbone's constructor builds directly;
* *fast path*: deployed modules run the kernels of
  :mod:`mmvit.deploy.kernels` exactly when
  :func:`~mmvit.deploy.kernels.fast_cpu_inference` holds for their input,
  and otherwise the same maths with plain PyTorch operations.

The outputs equal the eval-mode outputs up to float32 rounding.

*Graph mode* (:func:`to_graph_mode`, :mod:`mmvit.deploy.graph`) goes one
step further for CPU inference: each deployed backbone runs as a frozen
TorchScript graph per input shape.
"""
from torch import nn

from mmvit.models.layers import ConvNormAct
from mmvit.models.utils import MMViTBackbone
from mmvit.registry import MODEL_PASSES
from .fold import fold_conv_norm

class ModuleRules:
    """``rule(module) -> module`` by exact module type (subclasses are not
    matched, so inference subclasses of a layer are left alone); the
    deploy pass and the export layers each keep one."""

    def __init__(self):
        self._rules = {}

    def register(self, *types):
        """A decorator registering a rule for these types."""

        def register(rule):
            for cls in types:
                self._rules[cls] = rule
            return rule

        return register

    def apply(self, module):
        """What the rule of ``module``'s type returns, or ``module``."""
        rule = self._rules.get(type(module))
        return module if rule is None else rule(module)

    def apply_below(self, module):
        """Replace, top-down and in place, every module below ``module``
        by :meth:`apply`; the walk goes on inside each result."""
        for name, child in list(module.named_children()):
            new = self.apply(child)
            if new is not child:
                setattr(module, name, new)
            self.apply_below(new)


_RULES = ModuleRules()
deploy_rule = _RULES.register


def swap_class(module, cls):
    """A module of class ``cls`` holding ``module``'s parameters, buffers,
    children and attributes: an inference subclass of the layer that only
    changes its forward (or, for export, the layer's own class again)."""
    new = cls.__new__(cls)
    new.__dict__.update(module.__dict__)
    return new


def _refuse_training(module, args):
    if module.training:
        raise RuntimeError(
            f'{type(module).__name__} was switched to deploy mode (folded '
            'BatchNorms, merged layers) and runs in eval mode only; build '
            'it without deploy (and load its checkpoint) to train it.')


deploy_rule(ConvNormAct)(fold_conv_norm)


@MODEL_PASSES.register_module()
def switch_to_deploy(model: nn.Module) -> nn.Module:
    """Deploy ``model`` in place (see the module docstring); returns it."""
    model.eval()
    if _RULES.apply(model) is not model:
        raise TypeError(f'switch_to_deploy: {type(model).__name__} would be '
                        'replaced; deploy its parent instead')
    _RULES.apply_below(model)
    for module in model.modules():
        if isinstance(module, MMViTBackbone) and not module.deployed:
            module.deployed = True
            module.register_forward_pre_hook(_refuse_training)
    return model.eval()


from . import cas_vit, castling_vit, cmt, efficientvit  # noqa: E402,F401
from .graph import GraphBackbone, to_graph_mode  # noqa: E402

__all__ = ['switch_to_deploy', 'to_graph_mode', 'GraphBackbone',
           'deploy_rule', 'swap_class', 'ModuleRules']
