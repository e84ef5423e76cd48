"""Checkpoints that are never half-written, and finding a complete one.

A checkpoint is first written to a hidden temporary file in its own
directory, flushed to disk, then renamed over its final name
(``os.replace`` is atomic on POSIX file systems): a process killed at any
moment leaves either the previous file or the new, complete one, never a
truncated one under the final name. ``last_checkpoint`` is written the same
way and only after the checkpoint is in place; older checkpoints are removed
only after that.
"""
import glob
import os
import os.path as osp
import re
import zipfile

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.runner.checkpoint import CheckpointLoader

from mmvit.registry import HOOKS
from mmvit.utils.safe_load import load_local_checkpoint

ATOMIC_BACKEND = 'mmvit_atomic_local'
_TMP_PATTERN = '.{name}.tmp-{pid}'
_TMP_GLOB = '.*.tmp-*'


def atomic_write(data: bytes, path: str) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = os.fspath(path)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, _TMP_PATTERN.format(name=osp.basename(path),
                                               pid=os.getpid()))
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    try:  # make the rename itself durable
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose writes are atomic
    (:func:`atomic_write`)."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(obj, filepath)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write(obj.encode(encoding), filepath)


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)
# every local checkpoint mmengine reads (load_from, resume, upstream modules'
# Pretrained init) goes through safe_torch_load, whose errors name the file
CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint,
                                 force=True)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` whose saves cannot leave a broken file.

    Same arguments and behaviour as ``CheckpointHook``, except that on a
    local disk (no ``backend_args``, or the local backend):

    * every checkpoint file and ``last_checkpoint`` are written atomically
      (:class:`AtomicLocalBackend`): temporary file, fsync, rename;
    * ``last_checkpoint`` is updated only once the new checkpoint is in
      place, and checkpoints beyond ``max_keep_ckpts`` (and a previous
      best checkpoint) are removed only after that, so even with
      ``max_keep_ckpts=1`` a kill during a save keeps the previous
      checkpoint;
    * temporary files left by a killed save are removed before training.
    """

    def __init__(self, *args, backend_args=None, file_client_args=None,
                 **kwargs):
        local = file_client_args is None and (
            backend_args is None or backend_args.get('backend') == 'local')
        if local:
            backend_args = dict(backend=ATOMIC_BACKEND)
        super().__init__(*args, backend_args=backend_args,
                         file_client_args=file_client_args, **kwargs)
        self._atomic = local
        self._pending_removal = []

    def before_train(self, runner):
        super().before_train(runner)
        if self._atomic and is_main_process():
            for path in glob.glob(osp.join(self.out_dir, _TMP_GLOB)):
                os.remove(path)  # the rest of a save that was killed

    def _remove_later(self, path):
        self._pending_removal.append(path)

    def _flush_removals(self):
        keep = {self.last_ckpt, getattr(self, 'best_ckpt_path', None),
                *getattr(self, 'best_ckpt_path_dict', {}).values()}
        for path in self._pending_removal:
            if path not in keep and self.file_backend.isfile(path):
                self.file_backend.remove(path)
        self._pending_removal = []

    def _save_checkpoint_with_step(self, runner, step, meta):
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                oldest = self.keep_ckpt_ids.popleft()
                self._remove_later(self.file_backend.join_path(
                    self.out_dir, self.filename_tmpl.format(oldest)))
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir, filename, self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler, meta=meta,
            by_epoch=self.by_epoch, backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        pointer = osp.join(runner.work_dir, 'last_checkpoint')
        if self._atomic:
            atomic_write(self.last_ckpt.encode('utf-8'), pointer)
        else:
            with open(pointer, 'w') as f:
                f.write(self.last_ckpt)
        self._flush_removals()

    def _save_best_checkpoint(self, runner, metrics):
        # the base class removes the previous best file before writing the
        # new one; defer that removal until the new one is complete
        backend = self.file_backend
        backend.remove = self._remove_later
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            del backend.remove
        if is_main_process():
            self._flush_removals()


# -- finding a complete checkpoint ---------------------------------------
def checkpoint_problem(path):
    """Why ``path`` cannot be resumed from (a sentence), or None when it is
    a complete checkpoint. Zip-format files (``torch.save``'s default) are
    checked entry by entry against their CRCs; others by loading them."""
    if not osp.isfile(path):
        return 'the file does not exist'
    if osp.getsize(path) == 0:
        return 'the file is empty'
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            return f'the zip archive is damaged ({err})'
        return None if bad is None else f'the entry {bad!r} is damaged'
    from mmvit.utils.safe_load import safe_torch_load
    try:
        safe_torch_load(path)
    except (RuntimeError, OSError) as err:
        return str(err)
    return None


_STEP = re.compile(r'(?:epoch|iter)_(\d+)\.pth$')


def saved_checkpoints(work_dir):
    """``epoch_N.pth``/``iter_N.pth`` files of ``work_dir``, newest first
    (by step number, then modification time)."""
    found = []
    for path in glob.glob(osp.join(work_dir, '*.pth')):
        match = _STEP.search(osp.basename(path))
        if match:
            found.append((int(match.group(1)), osp.getmtime(path), path))
    return [path for _, _, path in sorted(found, reverse=True)]


def read_last_checkpoint(work_dir):
    """The path ``work_dir/last_checkpoint`` names, or None."""
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        return None
    with open(pointer, encoding='utf-8', errors='replace') as f:
        path = f.read().strip()
    return path or None


def find_resume_checkpoint(work_dir, requested=None, log=print):
    """The checkpoint ``--resume`` should continue from.

    Args:
        work_dir (str): the run's work dir.
        requested (str, optional): the path given to ``--resume``; None for
            the work dir's latest.
        log (callable): receives the message when another file than the
            latest is chosen.

    Returns:
        str or None: a complete checkpoint; None when the work dir holds
        none at all (the run then starts from scratch).

    Raises:
        RuntimeError: ``requested`` is damaged, or every checkpoint of the
            work dir is.
    """
    if requested is not None:
        problem = checkpoint_problem(requested)
        if problem is None:
            return requested
        others = [p for p in saved_checkpoints(osp.dirname(
            osp.abspath(requested))) if osp.abspath(p) != osp.abspath(
                requested) and checkpoint_problem(p) is None]
        hint = (f' The newest complete checkpoint next to it is '
                f'{others[0]!r}: pass that to --resume.' if others else '')
        raise RuntimeError(
            f'--resume {requested!r}: cannot resume from this file: '
            f'{problem}.{hint} Nothing was changed in the work dir.')
    latest = read_last_checkpoint(work_dir)
    candidates = ([latest] if latest else []) + [
        p for p in saved_checkpoints(work_dir)
        if latest is None or osp.abspath(p) != osp.abspath(latest)]
    damaged = []
    for path in candidates:
        problem = checkpoint_problem(path)
        if problem is None:
            if damaged:
                log(f'--resume: the newest checkpoint {damaged[0][0]!r} '
                    f'cannot be used ({damaged[0][1]}); resuming from '
                    f'{path!r}, the newest complete one, instead.')
            return path
        damaged.append((path, problem))
    if damaged:
        listing = '; '.join(f'{p}: {why}' for p, why in damaged)
        raise RuntimeError(
            f'--resume: no complete checkpoint in {work_dir!r} ({listing}). '
            'Start without --resume to train from scratch, or pass a good '
            'checkpoint with --resume PATH.')
    return None


# -- does a checkpoint fit the model? ------------------------------------
def _saved_model_type(checkpoint):
    """``'RetinaNet with backbone mmvit.CMT'``-like words for the model of
    the run that saved ``checkpoint`` (its ``meta.cfg``), or ''."""
    text = (checkpoint.get('meta') or {}).get('cfg')
    if not isinstance(text, str):
        return ''
    try:
        from mmengine.config import Config
        model = Config.fromstring(text, '.py').get('model') or {}
    except Exception:  # an unreadable config says nothing
        return ''
    words = str(model.get('type', ''))
    backbone = model.get('backbone')
    if isinstance(backbone, dict) and backbone.get('type'):
        words += f' with backbone {backbone["type"]}'
    return words


def checkpoint_fit(model, path):
    """Compare ``model``'s state dict with the checkpoint at ``path``.

    Returns:
        dict: ``missing`` (model keys the file lacks), ``unexpected`` (file
        keys the model lacks), ``mismatched`` (``key: file shape vs model
        shape``), ``total`` (the model's tensors) and ``saved_from`` (the
        model the file's run config describes, or '').
    """
    from mmvit.models.utils.checkpoint import extract_state_dict
    from mmvit.utils.safe_load import safe_torch_load
    checkpoint = safe_torch_load(path, mmap=zipfile.is_zipfile(path))
    state = extract_state_dict(checkpoint, path, prefix='')  # whole model
    own = model.state_dict()
    mismatched = [
        f'{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}'
        for k, v in own.items() if k in state and state[k].shape != v.shape]
    return dict(
        missing=[k for k in own if k not in state],
        unexpected=[k for k in state if k not in own],
        mismatched=mismatched, total=len(own),
        saved_from=_saved_model_type(checkpoint))


def require_fit(model, path, min_fraction=1.0, use='test'):
    """Raise unless the checkpoint at ``path`` gives ``model`` at least
    ``min_fraction`` of its tensors with their shapes (1.0: every tensor).

    The error counts and lists the missing and mismatched tensors and names
    the model the file was saved from and the one ``model`` is; ``use``
    says what is refused (``'test'``, ``'train'``, ``'run inference'``).
    """
    from mmvit.models.utils.checkpoint import show_keys
    fit = checkpoint_fit(model, path)
    bad = len(fit['missing']) + len(fit['mismatched'])
    if fit['total'] - bad >= min_fraction * fit['total']:
        return
    origin = (f' The file was saved from a {fit["saved_from"]}; this '
              f'config builds a {type(model).__name__}'
              f'{_backbone_words(model)}.' if fit['saved_from'] else '')
    detail = []
    if fit['missing']:
        detail.append(f'{len(fit["missing"])} of the model\'s '
                      f'{fit["total"]} tensors are missing from it '
                      f'({show_keys(fit["missing"], 6)})')
    if fit['mismatched']:
        detail.append(f'{len(fit["mismatched"])} have other shapes '
                      f'({show_keys(fit["mismatched"], 3)})')
    raise RuntimeError(
        f'checkpoint {path!r} does not fit the model of this config: '
        f'{"; ".join(detail)}.{origin} Refusing to {use} with randomly '
        'initialised layers; pass the checkpoint of this config\'s model '
        '(or the matching config).')


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Refuse a ``load_from`` checkpoint that does not fit the model.

    mmengine loads ``load_from`` non-strictly: the tensors of another model
    are skipped with a warning and the run goes on with randomly
    initialised layers. Before testing this hook requires every tensor of
    the model, with its shape; before training (fine-tuning may replace a
    head) at least ``min_train_fraction`` of them.

    Args:
        min_train_fraction (float): the least fraction of the model's
            tensors a ``load_from`` checkpoint must provide for training.
    """
    priority = 'VERY_HIGH'  # before DeployHook changes the model

    def __init__(self, min_train_fraction=0.5):
        self.min_train_fraction = min_train_fraction

    def _check(self, runner, strict):
        from mmengine.model import BaseTTAModel, is_model_wrapper
        path = getattr(runner, '_load_from', None)
        if not path or not osp.isfile(path):
            return
        model = runner.model
        while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
            model = model.module  # the checkpoint is the wrapped model's
        require_fit(model, path, 1.0 if strict else self.min_train_fraction,
                    'test' if strict else 'train')

    def before_train(self, runner):
        if not runner._resume:
            self._check(runner, strict=False)

    def before_test(self, runner):
        self._check(runner, strict=True)

    def before_val(self, runner):
        # runner.val() on its own: the train loop was never built (it is
        # None or still its config dict); validation during training is not
        # checked again
        if runner._train_loop is None or isinstance(runner._train_loop,
                                                    dict):
            self._check(runner, strict=True)


def _backbone_words(model):
    backbone = getattr(model, 'backbone', None)
    return f' with backbone {type(backbone).__name__}' if backbone else ''
