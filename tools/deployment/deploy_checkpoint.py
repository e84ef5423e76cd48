#!/usr/bin/env python
"""Save a deployed checkpoint (folded BatchNorms, merged layers), which the
same config rebuilds with ``--cfg-options model.backbone.deploy=True``
(classifiers: also ``model.head.deploy=True``):

    python tools/deployment/deploy_checkpoint.py \\
        configs/retinanet_cas_vit_s.py work_dirs/.../epoch_12.pth \\
        retinanet_cas_vit_s_deploy.pth
    python tools/test.py configs/retinanet_cas_vit_s.py \\
        retinanet_cas_vit_s_deploy.pth --cfg-options model.backbone.deploy=True
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the model\'s config file')
    parser.add_argument('checkpoint', help='its (training) checkpoint')
    parser.add_argument('out', help='where to write the deployed checkpoint')
    parser.add_argument('--overlay', action='append', default=[],
                        metavar='FILE', help='config overlay (repeatable)')
    parser.add_argument('--force', action='store_true',
                        help='overwrite an existing OUT')
    args = parser.parse_args(argv)
    for name in ('config', 'checkpoint'):
        if not osp.isfile(getattr(args, name)):
            parser.error(f'{name} file {getattr(args, name)!r} does not '
                         'exist')
    if osp.exists(args.out) and not args.force:
        parser.error(f'{args.out} exists; pass --force to overwrite it')
    return args


def main(argv=None):
    args = parse_args(argv)
    import mmvit  # noqa: F401  (safe torch.load globals)
    from mmvit.apis.deploy_checkpoint import (deploy_checkpoint,
                                              rebuild_options)
    try:
        model = deploy_checkpoint(args.config, args.checkpoint, args.out,
                                  args.overlay)
    except (KeyError, ValueError, RuntimeError) as error:
        sys.exit(f'deploy_checkpoint: {error}')
    print(f'{args.checkpoint} -> {args.out} (deployed); rebuild with '
          f'--cfg-options {rebuild_options(model)}')


if __name__ == '__main__':
    main()
