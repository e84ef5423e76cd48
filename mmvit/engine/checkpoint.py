"""Checkpoints that are never half-written, resuming past a damaged one, and
refusing weights that do not fit the model.

Saving goes through mmengine's ``CheckpointHook`` unchanged; only its storage
backend differs (:class:`AtomicLocalBackend`): every file is written to a
hidden temporary file in its folder, flushed and renamed over its final name,
and the removals the hook asks for (the oldest checkpoint beyond
``max_keep_ckpts``, the previous best one) wait until the next checkpoint is
complete. A process killed at any moment leaves the previous checkpoint.
"""
import glob
import os
import os.path as osp
import re

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook, Hook

from mmvit.registry import HOOKS
from mmvit.utils.checkpoint import checkpoint_problem

ATOMIC_BACKEND = 'mmvit_atomic_local'
_TMP_GLOB = '.*.tmp-*'


def atomic_write(data: bytes, path: str) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync and a
    rename (``os.replace`` is atomic on POSIX file systems)."""
    path = os.fspath(path)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{osp.basename(path)}.tmp-{os.getpid()}')
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic writes and deferred
    removals: a file removed through it is deleted once the next file is
    completely written (the hook removes the oldest checkpoint before it
    saves the new one)."""
    _pending = []  # removals of this process, waiting for a complete write

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(obj, filepath)
        for path in AtomicLocalBackend._pending:
            if osp.abspath(path) != osp.abspath(filepath) and osp.isfile(
                    path):
                os.remove(path)
        AtomicLocalBackend._pending.clear()

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        self.put(obj.encode(encoding), filepath)

    def remove(self, filepath) -> None:
        AtomicLocalBackend._pending.append(str(filepath))


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` saving through
    :class:`AtomicLocalBackend` when it saves to a local disk (no
    ``backend_args``); same arguments. Temporary files of a killed save are
    removed when training starts again."""

    def __init__(self, *args, backend_args=None, **kwargs):
        if backend_args is None and kwargs.get('file_client_args') is None:
            backend_args = dict(backend=ATOMIC_BACKEND)
        super().__init__(*args, backend_args=backend_args, **kwargs)

    def before_train(self, runner):
        super().before_train(runner)
        if is_main_process():
            for path in glob.glob(osp.join(self.out_dir, _TMP_GLOB)):
                os.remove(path)


# -- finding a complete checkpoint ---------------------------------------
_STEP = re.compile(r'(?:epoch|iter)_(\d+)\.pth$')


def saved_checkpoints(work_dir):
    """``epoch_N.pth``/``iter_N.pth`` files of ``work_dir``, newest first."""
    found = []
    for path in glob.glob(osp.join(work_dir, '*.pth')):
        match = _STEP.search(osp.basename(path))
        if match:
            found.append((int(match.group(1)), osp.getmtime(path), path))
    return [path for _, _, path in sorted(found, reverse=True)]


def read_last_checkpoint(work_dir):
    """The path ``work_dir/last_checkpoint`` names, or ''."""
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        return ''
    with open(pointer, encoding='utf-8', errors='replace') as f:
        return f.read().strip()


def find_resume_checkpoint(work_dir, requested=None, log=print):
    """The checkpoint ``--resume`` continues from: ``requested`` unless it
    is damaged (an error naming the newest complete file next to it), else
    the newest complete one of ``work_dir`` (``log`` names a damaged newer
    one), None when there is none, an error when all are damaged."""
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
        if osp.abspath(p) != osp.abspath(latest or '.')]
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
def model_words(model_cfg):
    """``'RetinaNet with backbone CASViT'`` for a model config or module."""
    if isinstance(model_cfg, dict):
        kind = str(model_cfg.get('type', '?')).split('.')[-1]
        backbone = model_cfg.get('backbone')
        backbone = backbone.get('type') if isinstance(backbone, dict) else None
    else:
        kind = type(model_cfg).__name__
        backbone = getattr(model_cfg, 'backbone', None)
        backbone = type(backbone).__name__ if backbone is not None else None
    return kind + (f' with backbone {str(backbone).split(".")[-1]}'
                   if backbone else '')


def _saved_from(checkpoint):
    """Words for the model of the run that saved ``checkpoint``, or ''."""
    text = (checkpoint.get('meta') or {}).get('cfg')
    if not isinstance(text, str):
        return ''
    try:
        from mmengine.config import Config
        return model_words(Config.fromstring(text, '.py').get('model') or {})
    except Exception:  # an unreadable config says nothing
        return ''


def fit_problem(model, checkpoint, path, min_fraction=1.0, use='test'):
    """The error for a loaded ``checkpoint`` that gives ``model`` less than
    ``min_fraction`` of its tensors with their shapes, or None. It counts
    and lists what is missing or differs and names the model the file was
    saved from and the one ``model`` is."""
    from mmvit.models.utils.checkpoint import show_keys
    state = checkpoint.get('state_dict', checkpoint)
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    mismatched = [f'{k}: file {tuple(state[k].shape)} vs model '
                  f'{tuple(v.shape)}' for k, v in own.items()
                  if k in state and state[k].shape != v.shape]
    if len(own) - len(missing) - len(mismatched) >= min_fraction * len(own):
        return None
    detail = []
    if missing:
        detail.append(f'{len(missing)} of the model\'s {len(own)} tensors '
                      f'are missing from it ({show_keys(missing, 6)})')
    if mismatched:
        detail.append(f'{len(mismatched)} have other shapes '
                      f'({show_keys(mismatched, 3)})')
    saved = _saved_from(checkpoint)
    origin = (f' The file was saved from a {saved}; this config builds a '
              f'{model_words(model)}.' if saved else '')
    meta = checkpoint.get('meta') or {}
    deployed = bool(getattr(getattr(model, 'backbone', None), 'deploy', False))
    if meta.get('deployed') and not deployed:
        origin += (' It is a deployed checkpoint (folded layers) and this '
                   'config builds the training structure: add --cfg-options '
                   f'{meta.get("rebuild", "model.backbone.deploy=True")}.')
    elif deployed and not meta.get('deployed'):
        origin += (' This config builds the deployed structure '
                   '(model.backbone.deploy=True) and the file is not a '
                   'deployed checkpoint: drop that option (tools/test.py '
                   '--deploy folds the layers after loading).')
    return RuntimeError(
        f'checkpoint {path!r} does not fit the model of this config: '
        f'{"; ".join(detail)}.{origin} Refusing to {use} with randomly '
        'initialised layers; pass the checkpoint of this config\'s model '
        '(or the matching config).')


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Refuse a loaded checkpoint that does not fit the model.

    mmengine loads ``load_from`` non-strictly and would go on with random
    layers. This hook compares the checkpoint the runner has read
    (``after_load_checkpoint``) with the model and stops before testing
    unless it gives every tensor with its shape, before training unless it
    gives ``min_train_fraction`` of them (fine-tuning may replace a head).
    """
    priority = 'VERY_HIGH'

    def __init__(self, min_train_fraction=0.5):
        self.min_train_fraction = min_train_fraction
        self._loaded = None  # (model, checkpoint, path) until checked

    def after_load_checkpoint(self, runner, checkpoint):
        from mmengine.model import BaseTTAModel, is_model_wrapper
        model = runner.model
        while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
            model = model.module  # the checkpoint is the wrapped model's
        path = runner.cfg.get('load_from') or 'the checkpoint'
        self._loaded = (model, checkpoint, path)

    def _check(self, fraction, use):
        if self._loaded is not None:
            loaded, self._loaded = self._loaded, None
            error = fit_problem(*loaded, fraction, use)
            if error is not None:
                raise error

    def before_train(self, runner):
        self._check(self.min_train_fraction, 'train')

    def before_val(self, runner):
        # runner.val() on its own; during training the check ran before
        self._check(1.0, 'test')

    def before_test(self, runner):
        self._check(1.0, 'test')
