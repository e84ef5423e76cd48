"""mmvit: efficient vision-transformer backbones for OpenMMLab 3.x.

``mmvit.list_models(pattern)`` lists the model index,
``mmvit.get_model(name, pretrained=...)`` builds a backbone or a whole model
from it (:mod:`mmvit.apis.model_index`).
"""
from .utils.checkpoint import register_safe_globals
from .utils.version_check import check_versions
from .version import __version__, version_info

check_versions()

# ``_base_ = 'mmvit::<family>/<config>.py'``: mmengine resolves ``package::``
# names for the packages of its own table only, in the folder
# ``get_installed_path(package)/.mim``. A distribution name gives the folder
# beside its metadata, which an editable install lacks; a module of mmvit
# gives the folder mmvit is imported from, wherever that is.
from mmengine.config.utils import MODULE2PACKAGE  # noqa: E402

MODULE2PACKAGE['mmvit'] = 'mmvit.registry'

# Checkpoints written by mmengine hold a few plain Python/numpy objects; allow
# exactly those so that every ``torch.load`` stays ``weights_only=True``.
register_safe_globals()

_API = ('list_models', 'get_model', 'model_info')


def __getattr__(name):
    # the package facade: the model-index API, imported on first use
    if name in _API:
        from .apis import model_index
        return getattr(model_index, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = ['__version__', 'version_info', 'check_versions', *_API]
