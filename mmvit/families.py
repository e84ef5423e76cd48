"""The table of backbone families, read from ``configs/<family>/metafile.yml``.

One metafile per family, in OpenMMLab's model-index format: its collection
holds the family's facts (``Metadata``: backbone type, strides, variants,
smallest variant), its models the configs with the papers' numbers. Tools,
tests and docs read these records instead of typing the lists again.
Numbers inside lists are stored as strings (what ``mim search`` parses).
"""
import functools
import glob
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import yaml

# in a checkout a link to configs/, in an installed wheel a copy of it
CONFIGS = osp.join(osp.dirname(osp.abspath(__file__)), '.mim', 'configs')
HEADS = ('retinanet', 'mask_rcnn', 'semantic_fpn', 'upernet')


@dataclass(frozen=True)
class Family:
    """One backbone family of the model index."""
    key: str  # as in the config names: cas_vit, cmt, ...
    name: str  # for people: CAS-ViT
    backbone: str  # the registered type: CASViT
    strides: Tuple[int, ...]
    variants: Tuple[str, ...]  # smallest first
    smallest: str
    paper: dict = field(default_factory=dict)  # title, url
    models: Tuple[dict, ...] = ()
    weights_note: str = ''  # where to get weights the index has no URL for

    def config(self, head, variant):
        """``configs/{family}/{head}_{family}_{variant}.py`` (head
        ``imagenet`` for the classifier)."""
        return f'configs/{self.key}/{head}_{self.key}_{variant}.py'

    def paper_results(self, variant) -> Dict[str, dict]:
        """The published metrics of ``variant``, by config head
        (``imagenet``, ``retinanet``, ...)."""
        out = {}
        for model in self.models:
            if model['Metadata'].get('Variant') != variant:
                continue
            head = osp.basename(model['Config']).split(f'_{self.key}_')[0]
            for result in model.get('Results', ()):
                if result.get('Source') == 'paper':
                    out[head] = dict(result['Metrics'])
        return out


def _read(path):
    with open(path, encoding='utf-8') as f:
        data = yaml.safe_load(f)
    (collection, ) = data['Collections']
    meta = collection['Metadata']
    return Family(
        key=meta['Family'], name=collection['Name'],
        backbone=meta['Backbone'],
        strides=tuple(int(s) for s in meta['Strides']),
        variants=tuple(meta['Variants']), smallest=meta['Smallest'],
        paper=dict(collection.get('Paper', {})),
        models=tuple(data.get('Models', ())),
        weights_note=meta.get('Weights Note', ''))


@functools.lru_cache()
def families() -> Dict[str, Family]:
    """Every family, by key, in a fixed order (the metafile names)."""
    paths = sorted(glob.glob(osp.join(CONFIGS, '*', 'metafile.yml')))
    return {f.key: f for f in map(_read, paths)}


def family(key_or_backbone: str) -> Family:
    """A family by its key (``cas_vit``) or backbone type (``CASViT``)."""
    for fam in families().values():
        if key_or_backbone in (fam.key, fam.backbone):
            return fam
    raise KeyError(f'unknown family {key_or_backbone!r}; known: '
                   f'{", ".join(f.key for f in families().values())} '
                   f'(backbones {", ".join(backbone_types())})')


def backbone_types() -> List[str]:
    """The registered backbone types, sorted."""
    return sorted(f.backbone for f in families().values())


def variants() -> List[Tuple[Family, str]]:
    """Every ``(family, variant)`` pair."""
    return [(f, v) for f in families().values() for v in f.variants]
