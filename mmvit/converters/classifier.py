"""Official ImageNet checkpoints -> state dicts of mmvit's classifiers.

The result has the ``backbone.``, ``neck.`` and ``head.`` keys of
``configs/imagenet_{family}_{variant}.py``; the variant is found from the
tensor shapes unless given.
"""

import torch

from mmvit.families import families
from mmvit.registry import MODELS
from . import FAMILY_CONVERTERS, rename_prefixes

# family -> the classifier backbone's arguments (families with official
# classifiers only)
CLASSIFIER_BACKBONES = {
    'cas_vit': dict(out_indices=(3, )),
    'cmt': dict(out_indices=(3, ), out_norms=False),
    'efficientvit': dict(out_indices=(2, )),
}


def read_official(path, use_ema=False):
    """The tensors of an official checkpoint (``model`` or, with
    ``use_ema``, ``model_ema``), ``module.`` prefixes removed."""
    from mmvit.utils.checkpoint import read_checkpoint
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, dict):
        raise TypeError(f'{path}: expected a dict, got '
                        f'{type(checkpoint).__name__}')
    entry = 'model_ema' if use_ema else 'model'
    if use_ema and entry not in checkpoint:
        raise KeyError(f'{path}: --ema asks for "model_ema", but the file '
                       f'holds {sorted(checkpoint)}')
    state = checkpoint.get(entry, checkpoint)
    if 'state_dict' in state and isinstance(state['state_dict'], dict):
        state = state['state_dict']
    state = {k[len('module.'):] if k.startswith('module.') else k: v
             for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise KeyError(f'{path}: holds no tensors')
    return state


def _differences(own, converted):
    return sorted(set(own) ^ set(converted)) + sorted(
        k for k in set(own) & set(converted)
        if own[k].shape != converted[k].shape)


def convert_classifier(family, state, arch=None, source='checkpoint'):
    """Official tensors -> ``(state_dict, arch, distilled)``."""
    if family not in CLASSIFIER_BACKBONES:
        raise ValueError(f'official_to_mmvit: unknown family {family!r}; '
                         f'choose one of {", ".join(CLASSIFIER_BACKBONES)}')
    keys = FAMILY_CONVERTERS[family]
    kwargs = CLASSIFIER_BACKBONES[family]
    backbone_cls = MODELS.get(families()[family].backbone)
    head, body = {}, {}
    for key, value in state.items():
        name = rename_prefixes(key, keys.HEAD_KEYS)
        (head if name else body)[name or key] = value
    if not any(k.startswith('head.') for k in head):
        raise KeyError(f'{source}: no classifier tensors of a {family} '
                       f'checkpoint (expected keys such as '
                       f'{keys.HEAD_EXAMPLE!r}); its first keys are '
                       f'{sorted(state)[:6]}')
    archs = [arch] if arch else list(backbone_cls.arch_settings)
    tried = []
    for name in archs:
        backbone = backbone_cls(arch=name, **kwargs)
        own = backbone.state_dict()
        converted = keys.convert_backbone(dict(body), own)
        # e.g. CAS-ViT's classifier norm is the backbone's output norm 3
        converted.update({k[len('backbone.'):]: v for k, v in head.items()
                          if k.startswith('backbone.')})
        bad = _differences(own, converted)
        if not bad:
            out = {f'backbone.{k}': v for k, v in converted.items()}
            out.update({k: v for k, v in head.items()
                        if not k.startswith('backbone.')})
            distilled = any(k.startswith('head.dist.') for k in out)
            return out, name, distilled
        tried.append(f'{name}: {len(bad)} keys differ, e.g. {bad[:3]}')
    raise ValueError(
        f'{source}: its tensors fit no {family} variant '
        f'({", ".join(archs)}):\n  ' + '\n  '.join(tried))
