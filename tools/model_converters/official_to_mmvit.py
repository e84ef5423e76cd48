#!/usr/bin/env python
"""Convert an official ImageNet checkpoint into an mmpretrain classifier
checkpoint of mmvit.

    python tools/model_converters/official_to_mmvit.py --family cas_vit \\
        rcvit_s.pth checkpoints/cas_vit_s.pth
    python tools/test.py configs/cas_vit/imagenet_cas_vit_s.py checkpoints/cas_vit_s.pth

The output holds ``state_dict`` with ``backbone.``, ``neck.`` and ``head.``
keys (the layout of ``configs/imagenet_{family}_{variant}.py``) and a
``meta`` entry naming the family, the variant and the source. The variant
is found from the tensor shapes (``--arch`` to insist on one). The same
file initialises the detection and segmentation backbones
(``init_cfg=dict(type='Pretrained', checkpoint=...)`` keeps its
``backbone.`` part).

Key maps: mmvit.converters (one module per family). Castling-ViT has no
official checkpoint.
"""
import argparse
import os
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

from mmvit.converters.classifier import (CLASSIFIER_BACKBONES,  # noqa: E402
                                        convert_classifier, read_official)

FAMILIES = tuple(CLASSIFIER_BACKBONES)


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
        out, arch, distilled = convert_classifier(
            args.family, state, args.arch, args.src)
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
