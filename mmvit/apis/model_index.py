"""The model index as a Python API: list the models, build them by name.

Names are those of the metafiles (``configs/<family>/metafile.yml``): every config
(``retinanet_cas_vit_s``, ``semantic_fpn_cmt_ti``, the ImageNet classifiers
``cas_vit_s_in1k``, ...) and every backbone (``cas_vit_s``: the family key
and the variant).
"""
import fnmatch
import os.path as osp

from mmvit.families import families
from mmvit.utils.config import config_path  # noqa: F401 (API)


def _backbones():
    return {f'{fam.key}_{variant}': (fam, variant)
            for fam in families().values() for variant in fam.variants}


def _index_models():
    return {model['Name']: (fam, model) for fam in families().values()
            for model in fam.models}


def list_models(pattern='*'):
    """Sorted names of the index matching the shell-style ``pattern``
    (e.g. ``'retinanet_*'``, ``'*efficientvit_m4*'``)."""
    names = set(_backbones()) | set(_index_models())
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def _classifier_entry(fam, variant):
    for model in fam.models:
        if model['Config'] == fam.config('imagenet', variant):
            return model
    return {}


def model_info(name):
    """What the index knows of ``name``: kind (``backbone`` or the config's
    head), family, variant, config, weights (a URL or None), where to get
    weights without a URL, and the papers' results."""
    backbones, models = _backbones(), _index_models()
    if name in backbones:
        fam, variant = backbones[name]
        entry = _classifier_entry(fam, variant)
        return dict(name=name, kind='backbone', family=fam.key,
                    backbone=fam.backbone, variant=variant,
                    config=None, weights=entry.get('Weights'),
                    weights_note=fam.weights_note,
                    channels=[int(c) for c in entry.get(
                        'Metadata', {}).get('Channels', ())],
                    strides=list(fam.strides),
                    results=fam.paper_results(variant))
    if name in models:
        fam, model = models[name]
        head = osp.basename(model['Config']).split(f'_{fam.key}_')[0]
        variant = model['Metadata']['Variant']
        return dict(name=name, kind=head, family=fam.key,
                    backbone=fam.backbone, variant=variant,
                    config=model['Config'], weights=model.get('Weights'),
                    weights_note=fam.weights_note,
                    results={r['Dataset']: r['Metrics']
                             for r in model.get('Results', ())})
    close = fnmatch.filter(list_models(), f'*{name.split("_")[0]}*')[:8]
    raise KeyError(f'unknown model {name!r}; mmvit.list_models() lists '
                   f'{len(list_models())} names' +
                   (f', e.g. {", ".join(close)}' if close else ''))


def _no_weights(info):
    raise ValueError(
        f'{info["name"]}: the index has no downloadable weights'
        + (f' ({info["weights_note"]})' if info['weights_note'] else '')
        + '; pass pretrained=<local file or URL>')


def get_model(name, pretrained=False, cfg_options=None, **kwargs):
    """Build ``name`` of the index.

    Args:
        name (str): a backbone (``cas_vit_s``) or a config of the index.
        pretrained (bool | str): False: weights as initialised (a config's
            ``init_cfg`` is not applied); True: the index's weights (official
            ImageNet weights for backbones and classifiers); a path or URL:
            that checkpoint (any layout the backbones load for a backbone,
            a checkpoint of the model otherwise).
        cfg_options (dict, optional): dotted config keys to override, for
            config models.
        **kwargs: backbone arguments (``out_indices``, ``frozen_stages``,
            ...), for backbones.

    Returns:
        nn.Module: the backbone (its ``feature_info`` gives the channels and
        strides of its outputs) or the config's model.
    """
    info = model_info(name)
    if info['kind'] == 'backbone':
        from mmvit.registry import MODELS
        checkpoint = pretrained if isinstance(pretrained, str) else (
            info['weights'] or _no_weights(info)) if pretrained else None
        init_cfg = None if checkpoint is None else dict(
            type='Pretrained', checkpoint=checkpoint)
        model = MODELS.get(info['backbone'])(
            arch=info['variant'], init_cfg=init_cfg, **kwargs)
        if init_cfg is not None:
            model.init_weights()
        return model
    if kwargs:
        raise TypeError(f'{name} is built from {info["config"]}; pass '
                        f'cfg_options, not {sorted(kwargs)}')
    from mmvit.utils.config import build_model, load_config
    cfg = load_config(config_path(info['config']), cfg_options=cfg_options)
    if 'backbone' in cfg.model:
        cfg.model.backbone.init_cfg = None
    model = build_model(cfg)
    if pretrained is True:
        checkpoint = info['weights'] or _no_weights(info)
    else:
        checkpoint = pretrained or None
    if checkpoint is not None:
        _load_whole_model(model, info, checkpoint)
    return model


def _load_whole_model(model, info, checkpoint):
    """A checkpoint of the model, or an official classifier file (converted
    to the classifier's keys), loaded strictly."""
    from mmengine.runner.checkpoint import load_state_dict

    from mmvit.converters.classifier import (CLASSIFIER_BACKBONES,
                                             convert_classifier)
    from mmvit.models.utils import extract_state_dict
    from mmvit.utils.checkpoint import read_checkpoint
    state = extract_state_dict(read_checkpoint(checkpoint), str(checkpoint),
                               prefix='')
    if not any(k in model.state_dict() for k in state) and \
            info['kind'] == 'imagenet' and \
            info['family'] in CLASSIFIER_BACKBONES:
        state, _, _ = convert_classifier(info['family'], state,
                                         info['variant'], str(checkpoint))
    try:
        load_state_dict(model, state, strict=True)
    except RuntimeError as err:
        raise ValueError(f'{checkpoint}: does not fit {info["name"]}: '
                         f'{err}') from None
