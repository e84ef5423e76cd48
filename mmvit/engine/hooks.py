"""Training hooks."""
import collections
import math

from mmengine.hooks import Hook, LoggerHook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmvit.registry import HOOKS

SCHEDULES = ('linear', 'cosine')


@HOOKS.register_module()
class CastlingAnnealHook(Hook):
    """Anneal Castling-ViT's auxiliary softmax weight to exactly 0.

    Before every training iteration the weight of every
    ``LinearAngularAttention``'s masked-softmax branch is set from the
    progress ``p = iter / max_iters``: ``start * s(p / end)`` for
    ``p < end``, exactly 0 (the branch no longer computed) from then on,
    with ``s(t) = 1 - t`` (linear) or ``(1 + cos(pi t)) / 2`` (cosine). The
    weight is a buffer of the model; on resume it is recomputed anyway.

    Args:
        start (float): the weight at the first iteration, >= 0.
        end (float): the fraction of the schedule, in (0, 1], at which it
            reaches 0.
        schedule (str): ``'linear'`` or ``'cosine'``.
    """
    priority = 'NORMAL'

    def __init__(self, start=1.0, end=0.5, schedule='linear'):
        if not (0 < end <= 1 and schedule in SCHEDULES and start >= 0):
            raise ValueError(
                f'CastlingAnnealHook(start={start!r}, end={end!r}, schedule='
                f'{schedule!r}): allowed are start >= 0, end in (0, 1], '
                f'schedule in {SCHEDULES}')
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

    @staticmethod
    def set_factor(model, value):
        """Call ``set_aux_factor(value)`` of the outermost modules that have
        one (Castling-ViT backbones); returns the attention layers set."""
        count, done = 0, []
        for name, module in model.named_modules():
            if callable(getattr(module, 'set_aux_factor', None)) and not any(
                    name.startswith(prefix) for prefix in done):
                count += module.set_aux_factor(value)
                done.append(name + '.' if name else '')
        return count

    def _apply(self, runner, log=True):
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        value = self.factor(runner.iter / max(runner.max_iters, 1))
        if self.set_factor(model, value) == 0 and not getattr(
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


def _random_states():
    """The RNG states of this process, in types ``weights_only`` loads."""
    import random

    import numpy as np
    import torch
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    states = dict(
        python=random.getstate(),
        numpy=dict(name=name, keys=torch.from_numpy(keys.astype(np.int64)),
                   pos=int(pos), has_gauss=int(has_gauss),
                   gauss=float(gauss)),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def _set_random_states(states):
    import random

    import numpy as np
    import torch
    version, internal, gauss = states['python']
    random.setstate((version, tuple(internal), gauss))
    np_state = states['numpy']
    np.random.set_state(
        (np_state['name'], np_state['keys'].numpy().astype(np.uint32),
         np_state['pos'], np_state['has_gauss'], np_state['gauss']))
    torch.set_rng_state(states['torch'])
    if 'cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states['cuda'])


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save every process's RNG states with each checkpoint and restore
    them on resume, so that a resumed run draws the random numbers an
    uninterrupted one would (mmengine re-seeds it): in deterministic mode it
    ends with the same weights. Workers with ``persistent_workers=True``
    keep streams of their own. In distributed runs the states of all
    processes are gathered before the checkpoint hook runs."""
    priority = 'LOW'  # before CheckpointHook (VERY_LOW)

    def __init__(self):
        self._gathered = None  # (iteration, states of all ranks)
        self._checkpoint_hook = None

    def before_train(self, runner):
        from mmengine.hooks import CheckpointHook
        self._checkpoint_hook = next(
            (h for h in runner.hooks if isinstance(h, CheckpointHook)), None)

    def _gather(self, runner):
        from mmengine.dist import all_gather_object, is_distributed
        if is_distributed():
            self._gathered = (runner.iter, all_gather_object(_random_states()))

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        checkpoint = self._checkpoint_hook
        if checkpoint is not None and not checkpoint.by_epoch and (
                self.every_n_train_iters(runner, checkpoint.interval)
                or self.is_last_train_iter(runner)):
            self._gather(runner)

    def after_train_epoch(self, runner):
        self._gather(runner)

    def before_save_checkpoint(self, runner, checkpoint):
        from mmengine.dist import is_distributed
        if not is_distributed():
            checkpoint['random_states'] = [_random_states()]
        elif self._gathered is not None and self._gathered[0] == runner.iter:
            checkpoint['random_states'] = self._gathered[1]
        else:
            print_log('RandomStateHook: no RNG states gathered for this '
                      'checkpoint; saving the main process\'s only',
                      'current', level=30)
            checkpoint['random_states'] = [_random_states()]

    def after_load_checkpoint(self, runner, checkpoint):
        from mmengine.dist import get_rank
        states = checkpoint.get('random_states')
        if not states:
            return
        rank = get_rank()
        if rank >= len(states):
            print_log(f'RandomStateHook: the checkpoint holds RNG states of '
                      f'{len(states)} processes, none for rank {rank}; '
                      'keeping the seeded ones', 'current', level=30)
            return
        _set_random_states(states[rank])


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training, naming the iteration and the loss terms, when a loss
    term becomes NaN or infinite; before the checkpoint hook, so no
    checkpoint of the corrupted weights is written. (mmdet's
    ``CheckInvalidLossHook`` checks the total loss every 50 iterations and
    stops with a bare ``AssertionError``.)"""
    priority = 'VERY_HIGH'

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        import torch
        bad = [
            f'{name}={float(value)}' for name, value in (outputs or {}).items()
            if isinstance(value, torch.Tensor) and value.numel() == 1
            and not torch.isfinite(value).all()
        ]
        if bad:
            raise FloatingPointError(
                f'Non-finite loss at iteration {runner.iter + 1} (epoch '
                f'{runner.epoch + 1}): {", ".join(bad)}. Training stopped; '
                f'the last checkpoint in {runner.work_dir} was written '
                'before this iteration.')


@HOOKS.register_module()
class DeployHook(Hook):
    """:func:`mmvit.deploy.switch_to_deploy` before testing, after the
    checkpoint is loaded (``tools/test.py --deploy``)."""

    def before_test(self, runner):
        from mmvit.deploy import switch_to_deploy
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        switch_to_deploy(model)


@HOOKS.register_module()
class PlainParamGroupsHook(Hook):
    """Make the optimizer's parameter groups plain dicts before training:
    mmengine leaves ``paramwise_cfg`` groups ``ConfigDict``, over which
    ``torch.compile`` cannot trace an optimizer step."""
    priority = 'VERY_HIGH'

    def before_train(self, runner):
        wrapper = runner.optim_wrapper
        wrappers = wrapper.values() if hasattr(wrapper, 'values') else \
            [wrapper]
        for each in wrappers:
            groups = each.optimizer.param_groups
            groups[:] = [g if type(g) is dict else dict(g) for g in groups]


@HOOKS.register_module()
class MainProcessLoggerHook(LoggerHook):
    """mmengine's ``LoggerHook`` whose test metrics file is written by the
    main process only (mmengine's is written by every process of a
    distributed test, at once, to one path)."""

    def after_test_epoch(self, runner, metrics=None):
        from mmengine.dist import is_main_process
        if is_main_process():
            super().after_test_epoch(runner, metrics)


@HOOKS.register_module()
class DatasetCheckHook(Hook):
    """Before training: stop when a head's ``num_classes`` differs from the
    training set's classes, and say in one line how many annotations the
    data set skipped (mmdet's ``CocoDataset`` drops unknown categories,
    degenerate boxes and boxes outside the image silently;
    ``tools/analysis/check_dataset.py`` lists them by reason)."""
    priority = 'VERY_HIGH'

    def before_train(self, runner):
        dataset = runner.train_dataloader.dataset
        while hasattr(dataset, 'dataset'):  # Repeat/ClassBalanced wrappers
            dataset = dataset.dataset
        classes = dataset.metainfo.get('classes')
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        for name, module in model.named_modules():
            count = getattr(module, 'num_classes', None)
            if classes and isinstance(count, int) and count > 1 and \
                    not name.startswith('rpn_head') and count != len(classes):
                raise ValueError(
                    f'model.{name}.num_classes={count} but the training set '
                    f'has {len(classes)} classes {tuple(classes)[:6]}: set '
                    f'model.{name}.num_classes={len(classes)} (or the data '
                    "set's metainfo classes)")
        cat_img_map = getattr(dataset, 'cat_img_map', None)  # COCO datasets
        if cat_img_map is None:
            return
        per_image = collections.Counter(
            image for images in cat_img_map.values() for image in images)
        infos = [dataset.get_data_info(i) for i in range(len(dataset))]
        total = sum(per_image[info['img_id']] for info in infos)
        loaded = sum(len(info['instances']) for info in infos)
        if total > loaded:
            print_log(
                f'DatasetCheckHook: the training set skipped {total - loaded} '
                f'of {total} annotations of {dataset.ann_file} (unknown '
                'categories, degenerate boxes, boxes outside the image); '
                'tools/analysis/check_dataset.py lists them', 'current',
                level=30)
