"""The ``mmvit`` registry scope.

Every registry here is a child of the matching mmengine root registry, so a
config whose ``default_scope`` is ``mmdet``, ``mmseg`` or ``mmpretrain`` builds
``type='mmvit.CASViT'`` without ``custom_imports``: mmengine imports
``mmvit.registry`` when it meets the ``mmvit.`` prefix and the registry then
imports the modules listed in ``locations`` on first use.
"""
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import Registry

MODELS = Registry(
    'model', parent=MMENGINE_MODELS, scope='mmvit',
    locations=['mmvit.models'])
HOOKS = Registry(
    'hook', parent=MMENGINE_HOOKS, scope='mmvit',
    locations=['mmvit.engine'])
OPTIM_WRAPPERS = Registry(
    'optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope='mmvit',
    locations=['mmvit.engine'])
