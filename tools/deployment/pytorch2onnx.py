#!/usr/bin/env python
"""Export an mmvit backbone, or a RetinaNet built on one, to ONNX.

    python tools/deployment/pytorch2onnx.py --backbone CASViT --arch s \\
        --out cas_vit_s.onnx --verify
    python tools/deployment/pytorch2onnx.py configs/retinanet_cas_vit_s.py \\
        --checkpoint work_dirs/retinanet_cas_vit_s/epoch_12.pth --verify

Outputs, input layout, exporters and the check are described in
docs/deployment.md (library: mmvit.export.onnx). Exit status: 0 on success,
1 when a difference exceeds --atol, 2 for bad arguments or a model that
cannot be exported.
"""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

from mmvit.export.onnx import (EXPORTERS, ToolError,  # noqa: E402
                               build_backbone, check_export_args, build_detector, default_arch,
                               default_verify_shape, dense_outputs,
                               describe_preprocessing, export,
                               report_verification)
from mmvit.families import backbone_types  # noqa: E402

BACKBONES = tuple(backbone_types())


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export an mmvit backbone or a RetinaNet detector to '
        'ONNX (see the module docstring for details).',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument(
        'config', nargs='?',
        help='a detector config (single-stage mmdet detector, e.g. '
        'configs/retinanet_cas_vit_s.py); omit it with --backbone')
    parser.add_argument(
        '--backbone', help='export a bare backbone: one of ' +
        ', '.join(BACKBONES))
    parser.add_argument(
        '--arch', help='backbone variant (default: the family default)')
    parser.add_argument(
        '--checkpoint', help='weights to load (backbone or detector '
        'checkpoint); random initialisation without it')
    parser.add_argument('--out', help='output .onnx file (default: '
                        '<backbone>_<arch>.onnx or <config name>.onnx)')
    parser.add_argument(
        '--shape', type=int, nargs=2, metavar=('H', 'W'),
        help='example input size (default 224 224 for backbones, '
        '800 1216 for detectors)')
    parser.add_argument('--batch', type=int, default=1,
                        help='example batch size')
    parser.add_argument('--opset', type=int,
                        help='ONNX opset (default 17 for the torchscript '
                        'exporter, 18 for dynamo)')
    parser.add_argument('--exporter', default='torchscript',
                        choices=EXPORTERS, help='torch.onnx exporter')
    parser.add_argument(
        '--no-deploy', action='store_true',
        help='export the model as built, without switch_to_deploy')
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--dynamic', dest='dynamic', action='store_true',
                       default=True,
                       help='dynamic batch, height and width (default)')
    group.add_argument('--static', dest='dynamic', action='store_false',
                       help='fix the input to the example size')
    parser.add_argument(
        '--verify', action='store_true',
        help='compare onnxruntime with PyTorch on the example size and the '
        '--verify-shape sizes')
    parser.add_argument(
        '--verify-shape', type=int, nargs=2, action='append',
        metavar=('H', 'W'),
        help='another input size for --verify (repeatable; default: one '
        'smaller non-square size that is no multiple of 32)')
    parser.add_argument('--atol', type=float, default=1e-4,
                        help='largest accepted absolute difference')
    args = parser.parse_args(argv)
    try:
        check_export_args(args)
    except ToolError as exc:
        parser.error(str(exc))
    return args


def main(argv=None):
    args = parse_args(argv)
    import torch

    from mmvit.deploy import switch_to_deploy
    try:
        if args.backbone is not None:
            arch = args.arch or default_arch(args.backbone)
            model = build_backbone(args.backbone, arch, args.checkpoint)
            shape = tuple(args.shape or (224, 224))
            out = args.out or f'{args.backbone.lower()}_{arch}.onnx'
            kind = f'{args.backbone}-{arch}'
        else:
            model = build_detector(args.config, args.checkpoint)
            shape = tuple(args.shape or (800, 1216))
            out = args.out or osp.splitext(osp.basename(args.config))[0] + \
                '.onnx'
            kind = type(model).__name__ + ' from ' + args.config
        if args.checkpoint is None:
            print('note: no --checkpoint, exporting random weights')
        if not args.no_deploy:
            switch_to_deploy(model)
        model.eval()
        if args.config is not None:
            describe_preprocessing(model)
            model = dense_outputs(model)
        example = torch.rand(args.batch, 3, *shape) * 4 - 2
        start = time.time()
        names = export(model, example, out, args.dynamic, args.exporter,
                       args.opset)
        print(f'exported {kind} to {out} in {time.time() - start:.1f} s '
              f'({args.exporter} exporter, opset {args.opset}, '
              f'{"dynamic batch/height/width" if args.dynamic else "static"}'
              f' input {args.batch}x3x{shape[0]}x{shape[1]}); outputs: '
              f'{", ".join(names)}')
        if args.config is not None:
            levels = len(names) // 2
            print(f'out0..out{levels - 1}: classification scores per level,'
                  f' out{levels}..out{2 * levels - 1}: box regressions')
        if not args.verify:
            return 0
        cases = [(args.batch, *shape)]
        if args.dynamic:  # other sizes, and another batch size
            cases += [(args.batch + 1, *size) for size in args.verify_shape
                      or [default_verify_shape(*shape)]]
        elif args.verify_shape:
            print('note: --static graph, verifying the example size only')
        return report_verification(model, out, cases, names, args.atol)
    except ToolError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
