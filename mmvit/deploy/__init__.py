"""Deployment: exact reparameterisation for inference on every device.

:func:`switch_to_deploy` puts a model in eval mode and calls the
``switch_to_deploy()`` method of every module that has one, innermost
first: folded BatchNorms (:class:`~mmvit.models.layers.ConvNormAct`),
norms folded into the projections after them, training-only branches
removed. The walk knows no family; each module deploys itself, and a
backbone built with ``deploy=True`` has the deployed structure from the
start, so a deployed checkpoint (``tools/deployment/deploy_checkpoint.py``)
reloads strictly into it. The outputs equal the eval-mode outputs up to
float32 rounding (1e-4 relative, tested for every family).

CPU inference goes further through ONNX Runtime: :mod:`mmvit.export`.
"""
from torch import nn


def switch_to_deploy(model: nn.Module) -> nn.Module:
    """Deploy ``model`` in place (see the module docstring); returns it in
    eval mode."""
    model.eval()
    for module in reversed(list(model.modules())):
        if hasattr(module, 'switch_to_deploy'):
            module.switch_to_deploy()
    return model.eval()


__all__ = ['switch_to_deploy']
