"""Reading configs, building their models, and the CPU launcher of the
tools."""
import os
import os.path as osp
import sys
from contextlib import contextmanager

from mmengine.config import Config

_PACKAGE = osp.dirname(osp.dirname(osp.abspath(__file__)))


def config_path(config):
    """The file of ``configs/...``: in the installed package's
    ``.mim/configs`` or, in a checkout, beside the package."""
    relative = config[len('configs/'):] if config.startswith('configs/') \
        else config
    for base in (osp.join(_PACKAGE, '.mim', 'configs'),
                 osp.join(osp.dirname(_PACKAGE), 'configs')):
        path = osp.join(base, relative)
        if osp.isfile(path):
            return path
    raise FileNotFoundError(f'config {config!r} is not installed with mmvit '
                            '(reinstall the package: pip install .)')


def _merge(cfg, options, what):
    try:
        cfg.merge_from_dict(options)
    except TypeError as err:
        # mmengine: "x=... in child config cannot inherit from base because
        # x is a dict in the child config but is of type NoneType in base"
        raise TypeError(
            f'{what}: {err} With --cfg-options, add KEY._delete_=True next to '
            'the new KEY.subkey=value settings to replace such a value.'
        ) from None


def _read(path):
    """``Config.fromfile``; a syntax error names the file it is in (this
    one or a ``_base_``): mmengine's parser error gives only the line."""
    try:
        return Config.fromfile(path)
    except SyntaxError as err:
        where, tb = path, err.__traceback__
        while tb is not None:  # the innermost config file being read
            name = tb.tb_frame.f_locals.get('filename')
            where = name if isinstance(name, str) and osp.isfile(name) \
                else where
            tb = tb.tb_next
        raise SyntaxError(f'config {path!r}: Python syntax error in '
                          f'{where}, line {err.lineno}: {err.msg}') from None


def load_config(path, overlays=(), cfg_options=None):
    """``Config.fromfile(path)``, then each overlay file merged over it (a
    small config whose keys replace or update the main one's, e.g.
    ``configs/_toy_/retinanet.py`` for the built-in data), then
    ``cfg_options``."""
    cfg = _read(path)
    for overlay in overlays or ():
        _merge(cfg, _read(overlay).to_dict(), f'overlay {overlay!r}')
    if cfg_options:
        _merge(cfg, cfg_options, '--cfg-options')
    return cfg


def set_work_dir(cfg, work_dir, config):
    """``--work-dir``, else the config's, else ``./work_dirs/<config name>``
    (mmdet's rule)."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config))[0])


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@contextmanager
def work_dir_lock(work_dir):
    """Hold ``work_dir/.mmvit.lock`` (the holder's pid and host) while a run
    writes there; released at exit. Another run into the work dir stops,
    naming the holder; the lock of a process of this host that no longer
    runs is taken over with a message. Only the main process (rank 0)
    takes it."""
    if os.environ.get('RANK', '0') != '0':
        yield
        return
    import socket
    host, pid = socket.gethostname(), os.getpid()
    path = osp.join(work_dir, '.mmvit.lock')
    os.makedirs(work_dir, exist_ok=True)
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            with open(path, encoding='utf-8', errors='replace') as f:
                other_pid, _, other_host = f.read().strip().partition(' ')
            if other_host == host and other_pid.isdigit() and \
                    not _running(int(other_pid)):
                print(f'work dir {work_dir!r}: taking over the lock of '
                      f'process {other_pid}, which no longer runs',
                      file=sys.stderr)
                os.remove(path)
                continue
            raise RuntimeError(
                f'work dir {work_dir!r} is in use by another run (process '
                f'{other_pid} on {other_host}, lock file {path}): wait for it '
                'to finish or pass another --work-dir' + (
                    '' if other_host == host else
                    '; remove the lock file if that run is gone'))
    with os.fdopen(fd, 'w') as f:
        f.write(f'{pid} {host}\n')
    try:
        yield
    finally:
        if osp.isfile(path):
            os.remove(path)


def build_model(cfg):
    """The model of ``cfg``, built by the registry of its ``default_scope``
    (mmdet, mmseg or mmpretrain); weights as constructed."""
    import importlib

    from mmengine.registry import init_default_scope
    scope = cfg.get('default_scope') or 'mmengine'
    init_default_scope(scope)
    return importlib.import_module(f'{scope}.registry').MODELS.build(
        cfg.model)


def setup_launcher(cfg, launcher):
    """``cfg.launcher``; on a machine without CUDA, distributed runs use
    gloo on CPU.

    mmengine's initialisation calls ``torch.cuda.set_device`` and gives DDP
    ``device_ids=[LOCAL_RANK]``, both of which fail without a GPU; so there
    the gloo process group is started here (torchrun's variables; the
    timeout of ``env_cfg.dist_cfg.timeout`` in seconds) and DDP wraps the
    CPU model with ``device_ids=None``. On a GPU machine a node may not run
    more processes than it has GPUs.
    """
    import torch
    cfg.launcher = launcher
    if launcher == 'none':
        return
    os.environ.setdefault('LOCAL_RANK', '0')
    if torch.cuda.is_available():
        per_node = int(os.environ.get('LOCAL_WORLD_SIZE', 0))
        if per_node > torch.cuda.device_count():
            raise RuntimeError(
                f'--launcher {launcher}: {per_node} processes per node were '
                f'started but this machine has {torch.cuda.device_count()} '
                f'GPUs: pass at most {torch.cuda.device_count()} as the '
                'number of processes to tools/dist_train.sh / dist_test.sh')
        return
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    import torch.distributed as dist
    if launcher == 'pytorch' and not dist.is_initialized():
        import datetime
        timeout = dist_cfg.get('timeout')
        dist.init_process_group(backend='gloo', **({} if timeout is None else
                                dict(timeout=datetime.timedelta(
                                    seconds=timeout))))


def shutdown_distributed():
    """Destroy the process group, if any: left to interpreter teardown,
    gloo's threads can abort a finished process (``terminate called without
    an active exception``), which torchrun reports as a failure."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
