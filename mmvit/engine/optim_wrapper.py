"""Mixed-precision training on every device, the CPU included."""
import torch
from mmengine.device import (is_cuda_available, is_mlu_available,
                             is_musa_available, is_npu_available)
from mmengine.optim import AmpOptimWrapper

from mmvit.registry import OPTIM_WRAPPERS


def has_accelerator():
    """Whether mmengine trains on an accelerator (CUDA, NPU, MLU, MUSA)."""
    return (is_cuda_available() or is_npu_available() or is_mlu_available()
            or is_musa_available())


@OPTIM_WRAPPERS.register_module()
class MixedPrecisionOptimWrapper(AmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` where an accelerator trains, and on a
    CPU-only machine bfloat16 autocast without loss scaling (bfloat16 has
    float32's exponent range, so gradients do not underflow; mmengine's
    wrapper refuses to run without an accelerator).

    ``tools/train.py --amp`` selects it. On the CPU the forward and the
    loss run under ``torch.autocast('cpu', dtype=torch.bfloat16)``; weights,
    gradients and the optimizer state stay float32. A checkpoint's
    ``loss_scaler`` state (saved on a GPU) is ignored there.

    Args:
        loss_scale (str | float | dict): as in ``AmpOptimWrapper``; unused
            on the CPU.
        dtype (str | torch.dtype, optional): the autocast dtype; on the CPU
            ``None`` or ``'bfloat16'``.
        **kwargs: the arguments of ``OptimWrapper`` (``optimizer``,
            ``clip_grad``, ``accumulative_counts``).
    """

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

    def state_dict(self):
        state = super().state_dict()
        if not state['loss_scaler']:  # a disabled scaler (CPU) has none
            del state['loss_scaler']
        return state
