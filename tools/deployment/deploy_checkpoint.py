#!/usr/bin/env python
"""Save a deployed checkpoint (folded BatchNorms, merged layers), which the
same config rebuilds with ``--cfg-options model.backbone.deploy=True``
(classifiers: also ``model.head.deploy=True``):

    python tools/deployment/deploy_checkpoint.py \\
        configs/cas_vit/retinanet_cas_vit_s.py work_dirs/.../epoch_12.pth \\
        retinanet_cas_vit_s_deploy.pth
    python tools/test.py configs/cas_vit/retinanet_cas_vit_s.py \\
        retinanet_cas_vit_s_deploy.pth --cfg-options model.backbone.deploy=True
"""
import argparse
import os
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


def rebuild_options(model):
    """The ``--cfg-options`` that rebuild ``model``'s deployed structure."""
    return 'model.backbone.deploy=True' + (
        ' model.head.deploy=True' if hasattr(getattr(model, 'head', None),
                                             'deploy') else '')


def deploy_checkpoint(config, checkpoint, out, overlays=()):
    """Build ``config``'s model, load ``checkpoint`` strictly, deploy it and
    save it to ``out`` (a temporary file, then a rename)."""
    import torch
    from mmengine.runner.checkpoint import load_state_dict

    from mmvit.deploy import switch_to_deploy
    from mmvit.models.utils import extract_state_dict
    from mmvit.utils.checkpoint import read_checkpoint
    from mmvit.utils.config import build_model, load_config
    cfg = load_config(config, overlays)
    if 'backbone' in cfg.model:
        cfg.model.backbone.init_cfg = None
    model = build_model(cfg)
    load_state_dict(model, extract_state_dict(
        read_checkpoint(checkpoint), checkpoint, prefix=''), strict=True)
    switch_to_deploy(model)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    torch.save({'state_dict': model.state_dict(),
                'meta': dict(deployed=True, config=osp.basename(config),
                             source=osp.basename(checkpoint),
                             rebuild=rebuild_options(model))}, out + '.tmp')
    os.replace(out + '.tmp', out)
    return model


def main(argv=None):
    args = parse_args(argv)
    import mmvit  # noqa: F401  (safe torch.load globals)
    try:
        model = deploy_checkpoint(args.config, args.checkpoint, args.out,
                                  args.overlay)
    except (KeyError, ValueError, RuntimeError) as error:
        sys.exit(f'deploy_checkpoint: {error}')
    print(f'{args.checkpoint} -> {args.out} (deployed); rebuild with '
          f'--cfg-options {rebuild_options(model)}')


if __name__ == '__main__':
    main()
