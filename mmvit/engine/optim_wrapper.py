"""Mixed-precision training on every device, the CPU included."""
import torch
from torch import nn
from mmengine.device import get_device
from mmengine.optim import AmpOptimWrapper

from mmvit.registry import OPTIM_WRAPPERS


def has_accelerator():
    """Whether mmengine trains on an accelerator its AMP wrapper takes."""
    return get_device() in ('cuda', 'npu', 'mlu', 'musa')


def _enter_float32(module, args):
    """Forward pre-hook: autocast off and float32 inputs for this call."""
    if not torch.is_autocast_enabled('cpu'):
        return None
    module._float32_call = torch.autocast('cpu', enabled=False)
    module._float32_call.__enter__()
    return tuple(a.float() if torch.is_tensor(a) else a for a in args)


def _leave_float32(module, args, output):
    call = module.__dict__.pop('_float32_call', None)
    if call is not None:
        call.__exit__(None, None, None)


def keep_strided_depthwise_float32(model):
    """Run every strided depthwise convolution of ``model`` in float32 under
    CPU autocast (forward hooks, added once per model; the backward follows
    the forward's dtype): oneDNN's bfloat16 backward of these convolutions
    costs many times its float32 one (CMT's key/value reductions,
    EfficientViT's patch merging; docs/performance.md). Returns
    ``model``."""
    if getattr(model, '_mmvit_float32_convs', False):
        return model
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and \
                module.groups == module.in_channels > 1 and \
                max(module.stride) > 1:
            module.register_forward_pre_hook(_enter_float32)
            module.register_forward_hook(_leave_float32)
    model._mmvit_float32_convs = True
    return model


@OPTIM_WRAPPERS.register_module()
class MixedPrecisionOptimWrapper(AmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` on an accelerator; on a CPU-only
    machine, where mmengine's refuses to run, bfloat16 autocast of the
    forward and the loss without loss scaling (bfloat16 has float32's
    exponent range), float32 weights, gradients and optimizer state, the
    strided depthwise convolutions in float32
    (:func:`keep_strided_depthwise_float32`). ``tools/train.py --amp``
    selects it; ``dtype`` on the CPU: None or ``'bfloat16'``."""

    def __init__(self, loss_scale='dynamic', dtype=None, **kwargs):
        if has_accelerator():
            super().__init__(loss_scale=loss_scale, dtype=dtype, **kwargs)
            return
        if dtype not in (None, 'bfloat16', torch.bfloat16):
            raise ValueError(
                f'MixedPrecisionOptimWrapper: dtype={dtype!r} on the CPU; '
                'allowed: None or \'bfloat16\' (CPU autocast computes in '
                'bfloat16)')
        # OptimWrapper's own set-up, without AmpOptimWrapper's check for an
        # accelerator; a disabled scaler passes the loss and the step through
        super(AmpOptimWrapper, self).__init__(**kwargs)
        self._scale_update_param = None
        self.loss_scaler = torch.amp.GradScaler('cpu', enabled=False)
        self.cast_dtype = torch.bfloat16

    def optim_context(self, model):
        if not has_accelerator():
            keep_strided_depthwise_float32(model)
        return super().optim_context(model)

    def state_dict(self):
        state = super().state_dict()
        if not state['loss_scaler']:  # a disabled scaler (CPU) has none
            del state['loss_scaler']
        return state
