"""Config handling shared by tools/train.py and tools/test.py."""
import os
import os.path as osp

import torch
from mmengine.config import Config


def load_config(path, overlays=(), cfg_options=None):
    """Read ``path``, then merge each overlay file, then ``cfg_options``.

    An overlay is a small config file whose keys replace or update those of
    the main config (nested dicts are merged, lists replaced, ``_delete_``
    honoured): ``configs/_toy_/retinanet.py`` switches any RetinaNet config
    to the built-in data and a CPU schedule.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file {path!r} does not exist')
    cfg = Config.fromfile(path)
    for overlay in overlays or ():
        if not osp.isfile(overlay):
            raise FileNotFoundError(f'overlay file {overlay!r} does not exist')
        cfg.merge_from_dict(Config.fromfile(overlay).to_dict())
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def _types(node, path=''):
    """(path, type) of every ``type`` string in a config tree."""
    if isinstance(node, dict):
        if isinstance(node.get('type'), str):
            yield path or '<root>', node['type']
        for key, value in node.items():
            yield from _types(value, f'{path}.{key}' if path else str(key))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _types(value, f'{path}[{i}]')


def check_mmvit_types(cfg, source='config'):
    """Every ``type='mmvit.X'`` of ``cfg`` names a registered mmvit class.

    mmengine's own error for an unknown ``mmvit.X`` names the registry of
    the config's default scope, not the ``mmvit`` scope it searched.
    """
    import mmvit.engine  # noqa: F401  (registers the hooks)
    import mmvit.models  # noqa: F401
    from mmvit.registry import HOOKS, MODELS
    known = {name for registry in (MODELS, HOOKS)
             for name in registry.module_dict}
    for path, type_name in _types(cfg.to_dict() if hasattr(cfg, 'to_dict')
                                  else cfg):
        if type_name.startswith('mmvit.') and \
                type_name[len('mmvit.'):] not in known:
            raise KeyError(
                f'{source}: {path}.type={type_name!r}: no such class in the '
                f'mmvit registry scope (searched mmvit::model and '
                f'mmvit::hook); registered there: {sorted(known)}')


def prepare_config(args):
    """The config that tools/train.py and tools/test.py run.

    Reads ``args.config`` with ``args.overlay`` and ``args.cfg_options``,
    sets up the launcher and the work dir (``--work-dir``, else the
    config's, else ``./work_dirs/<config name>``).
    """
    cfg = load_config(args.config, args.overlay, args.cfg_options)
    check_mmvit_types(cfg, args.config)
    setup_launcher(cfg, args.launcher)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join(
            './work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def shutdown_distributed():
    """Destroy the process group, if any, before the interpreter exits:
    left to interpreter teardown, gloo's threads can abort the process
    after the work is done (``terminate called without an active
    exception``), which torchrun reports as a failure."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def setup_launcher(cfg, launcher):
    """Record the launcher; without CUDA, distributed runs use gloo on CPU.

    mmengine's own initialisation calls ``torch.cuda.set_device`` and gives
    DDP ``device_ids=[LOCAL_RANK]``, both of which fail without a GPU. On a
    machine without CUDA the gloo process group is therefore started here
    (torchrun's environment variables) and DDP wraps the CPU model with
    ``device_ids=None``.
    """
    cfg.launcher = launcher
    if launcher == 'none':
        return
    os.environ.setdefault('LOCAL_RANK', '0')
    if torch.cuda.is_available():
        return
    env_cfg = cfg.setdefault('env_cfg', {})
    env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    if launcher == 'pytorch':
        import torch.distributed as dist
        if not dist.is_initialized():
            dist.init_process_group(backend='gloo')


def build_model(cfg):
    """The model of ``cfg``, built by the registry of its ``default_scope``
    (mmdet, mmseg or mmpretrain); weights as constructed."""
    import importlib

    from mmengine.registry import init_default_scope
    import mmvit.models  # noqa: F401
    scope = cfg.get('default_scope') or 'mmengine'
    init_default_scope(scope)
    return importlib.import_module(f'{scope}.registry').MODELS.build(
        cfg.model)
