"""Config handling shared by tools/train.py and tools/test.py."""
import os
import os.path as osp

import torch
from mmengine.config import Config, DictAction  # noqa: F401


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


def default_work_dir(config_path):
    return osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


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
