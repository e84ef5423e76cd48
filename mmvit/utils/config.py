"""Reading configs (with overlays) and building their models."""
import os.path as osp

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


def build_model(cfg):
    """The model of ``cfg``, built by the registry of its ``default_scope``
    (mmdet, mmseg or mmpretrain); weights as constructed."""
    import importlib

    from mmengine.registry import init_default_scope
    scope = cfg.get('default_scope') or 'mmengine'
    init_default_scope(scope)
    return importlib.import_module(f'{scope}.registry').MODELS.build(
        cfg.model)
