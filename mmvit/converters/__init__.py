"""Official checkpoint layouts -> mmvit's keys, one module per family.

Each family module holds every key map of its official releases: the
backbone's (``convert_backbone(state_dict, model_state)``, which the
backbones call when loading ``init_cfg=dict(type='Pretrained')``) and the
classifier's (``HEAD_KEYS``, used by :mod:`mmvit.converters.classifier` and
``tools/model_converters/official_to_mmvit.py``). They work on dicts of
tensors only and import nothing of the models.
"""
from . import cas_vit, cmt, efficientvit
from .keys import rename_prefixes

FAMILY_CONVERTERS = {'cas_vit': cas_vit, 'cmt': cmt,
                     'efficientvit': efficientvit}


__all__ = ['FAMILY_CONVERTERS', 'cas_vit', 'cmt', 'efficientvit',
           'rename_prefixes']
