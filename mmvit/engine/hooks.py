"""Training hooks."""
import math

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmvit.registry import HOOKS

SCHEDULES = ('linear', 'cosine')


@HOOKS.register_module()
class CastlingAnnealHook(Hook):
    """Anneal Castling-ViT's auxiliary softmax weight to exactly 0.

    Before every training iteration the weight of the masked-softmax branch
    of every ``LinearAngularAttention`` is set from the run's progress
    ``p = iter / max_iters`` (so epoch- and iteration-based loops alike):
    ``start * s(p / end)`` for ``p < end`` and exactly 0 from then on, with
    ``s(t) = 1 - t`` (linear) or ``(1 + cos(pi t)) / 2`` (cosine). From
    then on the branch is not computed. The weight is a buffer of the model,
    so checkpoints keep it; on resume the hook recomputes it from the
    restored iteration anyway.

    Args:
        start (float): the weight at the first iteration. Defaults to 1.
        end (float): the fraction of the schedule at which it reaches 0,
            in (0, 1]. Defaults to 0.5.
        schedule (str): ``'linear'`` or ``'cosine'``.
    """
    priority = 'NORMAL'

    def __init__(self, start=1.0, end=0.5, schedule='linear'):
        if not 0 < end <= 1:
            raise ValueError('CastlingAnnealHook: end must be a fraction of '
                             f'the schedule in (0, 1], got {end!r}')
        if schedule not in SCHEDULES:
            raise ValueError(f'CastlingAnnealHook: schedule must be one of '
                             f'{SCHEDULES}, got {schedule!r}')
        if start < 0:
            raise ValueError(f'CastlingAnnealHook: start must be >= 0, got '
                             f'{start!r}')
        self.start = float(start)
        self.end = float(end)
        self.schedule = schedule

    def factor(self, progress):
        """The weight at ``progress`` (0 = first iteration, 1 = the end)."""
        if progress >= self.end:
            return 0.
        t = max(progress, 0.) / self.end
        if self.schedule == 'linear':
            return self.start * (1. - t)
        return self.start * 0.5 * (1. + math.cos(math.pi * t))

    def _apply(self, runner, log=True):
        from mmvit.models.backbones.castling_vit import set_aux_factor
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        value = self.factor(runner.iter / max(runner.max_iters, 1))
        if set_aux_factor(model, value) == 0 and not getattr(
                self, '_warned', False):
            print_log('CastlingAnnealHook: the model has no auxiliary '
                      'softmax branch; nothing to anneal', 'current',
                      level=30)
            self._warned = True
        if log:
            runner.message_hub.update_scalar('train/aux_factor', value)

    def before_train(self, runner):
        self._apply(runner, log=False)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._apply(runner)
