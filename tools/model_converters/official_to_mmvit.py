#!/usr/bin/env python
"""Convert an official ImageNet checkpoint into an mmpretrain classifier
checkpoint of mmvit.

    python tools/model_converters/official_to_mmvit.py --family cas_vit \\
        rcvit_s.pth checkpoints/cas_vit_s.pth
    python tools/test.py configs/imagenet_cas_vit_s.py checkpoints/cas_vit_s.pth

The output holds ``state_dict`` with ``backbone.``, ``neck.`` and ``head.``
keys (the layout of ``configs/imagenet_{family}_{variant}.py``) and a
``meta`` entry naming the family, the variant and the source. The variant
is found from the tensor shapes (``--arch`` to insist on one). The same
file initialises the detection and segmentation backbones
(``init_cfg=dict(type='Pretrained', checkpoint=...)`` keeps its
``backbone.`` part).

Official files: CAS-ViT (Google Drive, ``model`` / ``model_ema``), CMT
(``cmt_{tiny,xs,small,base}.pth`` of the CMT.pytorch release) and
EfficientViT (``efficientvit_m{0..5}.pth`` of its model zoo release).
Castling-ViT has no official checkpoint.
"""
import argparse
import os
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

FAMILIES = ('cas_vit', 'cmt', 'efficientvit')


def _cas_vit_head(key):
    """Official classifier keys of CAS-ViT -> ours (None: not a head key)."""
    for theirs, ours in (('norm.', 'backbone.norm3.'), ('head.', 'head.cls.fc.'),
                         ('dist_head.', 'head.dist.fc.')):
        if key.startswith(theirs):
            return ours + key[len(theirs):]
    return None


def _cmt_head(key):
    for theirs, ours in (('_fc.', 'neck.proj.conv.'), ('_bn.', 'neck.proj.bn.'),
                         ('head.', 'head.cls.fc.')):
        if key.startswith(theirs):
            return ours + key[len(theirs):]
    return None


def _efficientvit_head(key):
    for theirs, ours in (('head.bn.', 'head.cls.bn.'),
                         ('head.l.', 'head.cls.fc.'),
                         ('head_dist.bn.', 'head.dist.bn.'),
                         ('head_dist.l.', 'head.dist.fc.')):
        if key.startswith(theirs):
            return ours + key[len(theirs):]
    return None


def family_spec(family):
    """Backbone class, the classifier backbone's arguments, the head-key map
    and the official state-dict entry names of ``family``."""
    from mmvit.models import CASViT, CMT, EfficientViT
    return {
        'cas_vit': (CASViT, dict(out_indices=(3, )), _cas_vit_head),
        'cmt': (CMT, dict(out_indices=(3, ), out_norms=False), _cmt_head),
        'efficientvit': (EfficientViT, dict(out_indices=(2, )),
                         _efficientvit_head),
    }[family]


def read_official(path, use_ema=False):
    from mmvit.utils.safe_load import safe_torch_load
    if not osp.isfile(path):
        raise FileNotFoundError(f'official_to_mmvit: no such file: {path}')
    checkpoint = safe_torch_load(path, 'cpu')
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


def _fits(backbone, state):
    own = backbone.state_dict()
    return set(state) == set(own) and all(
        own[k].shape == v.shape for k, v in state.items())


def convert(family, state, arch=None, source='checkpoint'):
    """Official tensors -> (our classifier state dict, arch, distilled)."""
    if family not in FAMILIES:
        raise ValueError(f'official_to_mmvit: unknown family {family!r}; '
                         f'choose one of {", ".join(FAMILIES)}')
    backbone_cls, kwargs, head_key = family_spec(family)
    head, body = {}, {}
    for key, value in state.items():
        name = head_key(key)
        (head if name else body)[name or key] = value
    if not any(k.startswith('head.') for k in head):
        example = dict(cas_vit='head.weight', cmt='_fc.weight',
                       efficientvit='head.l.weight')[family]
        raise KeyError(f'{source}: no classifier tensors of a {family} '
                       f'checkpoint (expected keys such as {example!r}); '
                       f'its first keys are {sorted(state)[:6]}')
    archs = [arch] if arch else list(backbone_cls.arch_settings)
    tried = []
    for name in archs:
        backbone = backbone_cls(arch=name, **kwargs)
        converted = backbone.convert_checkpoint(dict(body))
        # CAS-ViT's classifier norm is the backbone's output norm 3.
        converted.update({k[len('backbone.'):]: v for k, v in head.items()
                          if k.startswith('backbone.')})
        if _fits(backbone, converted):
            out = {f'backbone.{k}': v for k, v in converted.items()}
            out.update({k: v for k, v in head.items()
                        if not k.startswith('backbone.')})
            distilled = any(k.startswith('head.dist.') for k in out)
            return out, name, distilled
        own = backbone.state_dict()
        bad = sorted(set(own) ^ set(converted)) + sorted(
            k for k in set(own) & set(converted)
            if own[k].shape != converted[k].shape)
        tried.append(f'{name}: {len(bad)} keys differ, e.g. {bad[:3]}')
    raise ValueError(
        f'{source}: its tensors fit no {family} variant '
        f'({", ".join(archs)}):\n  ' + '\n  '.join(tried))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--family', required=True, choices=FAMILIES)
    parser.add_argument('src', help='the official checkpoint')
    parser.add_argument('dst', help='where to write the mmvit checkpoint')
    parser.add_argument('--arch', help='the variant (found from the tensor '
                        'shapes by default)')
    parser.add_argument('--ema', action='store_true',
                        help='convert the EMA weights ("model_ema")')
    parser.add_argument('--force', action='store_true',
                        help='overwrite an existing DST')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if osp.exists(args.dst) and not args.force:
        sys.exit(f'official_to_mmvit: {args.dst} exists; pass --force to '
                 f'overwrite it')
    try:
        state = read_official(args.src, args.ema)
        out, arch, distilled = convert(args.family, state, args.arch,
                                       args.src)
    except (OSError, KeyError, TypeError, ValueError) as error:
        sys.exit(f'official_to_mmvit: {error}')
    meta = dict(family=args.family, arch=arch, distilled=distilled,
                source=osp.basename(args.src), ema=args.ema,
                converted_by='tools/model_converters/official_to_mmvit.py')
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    tmp = args.dst + '.tmp'
    torch.save({'state_dict': out, 'meta': meta}, tmp)
    os.replace(tmp, args.dst)  # never leaves a half-written DST
    config = f'configs/imagenet_{args.family}_{arch}.py'
    print(f'{args.src} -> {args.dst}: {args.family} {arch}, {len(out)} '
          f'tensors, distillation head: {"yes" if distilled else "no"}')
    default_distilled = args.family == 'cas_vit'
    if distilled != default_distilled:
        print(f'note: {config} has distilled={default_distilled}; add '
              f'--cfg-options model.head.distilled={distilled} to test it')
    print(f'evaluate: python tools/test.py {config} {args.dst}')


if __name__ == '__main__':
    main()
