#!/usr/bin/env python
"""Export an mmvit backbone, or a whole detector or segmentor, to ONNX.

    python tools/deployment/pytorch2onnx.py --backbone CASViT --arch s \\
        --out cas_vit_s.onnx --verify
    python tools/deployment/pytorch2onnx.py configs/cas_vit/mask_rcnn_cas_vit_s.py \\
        --checkpoint work_dirs/mask_rcnn_cas_vit_s/epoch_12.pth \\
        --verify --image demo.jpg --benchmark

A config exports the whole model with its post-processing (detectors: boxes,
scores, labels and masks after NMS; segmentors: logits at the input size);
``--dense-outputs`` exports a RetinaNet's per-level maps instead. Inputs,
outputs, exporters and checks are described in docs/deployment.md (library:
mmvit.export). Exit status: 0 on success, 1 when a difference exceeds the
tolerance, 2 for bad arguments or a model that cannot be exported.
"""
import argparse
import copy
import os.path as osp
import sys
import tempfile
import time

import torch  # noqa: F401 (the latency functions)
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

from mmengine.config import DictAction  # noqa: E402

from mmvit.utils.benchmark import summarize  # noqa: E402
from mmvit.export.onnx import (EXPORTERS, ToolError,  # noqa: E402
                               build_backbone, build_config_model,
                               build_detector, check_export_args,
                               default_arch, default_verify_shape,
                               dense_outputs, describe_preprocessing, export,
                               export_end_to_end, report_end_to_end,
                               report_verification, synthetic_images,
                               verify_end_to_end)
from mmvit.families import backbone_types  # noqa: E402

BACKBONES = tuple(backbone_types())


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export an mmvit backbone or a whole detector or '
        'segmentor to ONNX (see the module docstring for details).',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument(
        'config', nargs='?',
        help='a detector or segmentor config (e.g. '
        'configs/cas_vit/retinanet_cas_vit_s.py); omit it with --backbone')
    parser.add_argument(
        '--backbone', help='export a bare backbone: one of ' +
        ', '.join(BACKBONES))
    parser.add_argument(
        '--arch', help='backbone variant (default: the family default)')
    parser.add_argument(
        '--checkpoint', help='weights to load (backbone or whole-model '
        'checkpoint); random initialisation without it')
    parser.add_argument('--out', help='output .onnx file (default: '
                        '<backbone>_<arch>.onnx or <config name>.onnx)')
    parser.add_argument(
        '--shape', type=int, nargs=2, metavar=('H', 'W'),
        help='example input size (default 224 224 for backbones, '
        '800 1216 for detectors, 512 512 for segmentors)')
    parser.add_argument('--batch', type=int, default=1,
                        help='example batch size (backbones)')
    parser.add_argument('--opset', type=int,
                        help='ONNX opset (default 17 for the torchscript '
                        'exporter, 18 for dynamo)')
    parser.add_argument('--exporter', default='torchscript',
                        choices=EXPORTERS, help='torch.onnx exporter')
    parser.add_argument(
        '--no-deploy', action='store_true',
        help='export the model as built, without switch_to_deploy')
    parser.add_argument(
        '--dense-outputs', action='store_true',
        help='RetinaNet: export the per-level class and box maps, without '
        'post-processing')
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--dynamic', dest='dynamic', action='store_true',
                       default=True,
                       help='dynamic batch, height and width (default)')
    group.add_argument('--static', dest='dynamic', action='store_false',
                       help='fix the input to the example size')
    parser.add_argument(
        '--verify', action='store_true',
        help='compare onnxruntime with PyTorch: backbones and dense outputs '
        'on the example size and the --verify-shape sizes; whole models on '
        'the --image files (default: two synthetic images)')
    parser.add_argument(
        '--verify-shape', type=int, nargs=2, action='append',
        metavar=('H', 'W'),
        help='another input size for --verify (repeatable; default: one '
        'smaller non-square size that is no multiple of 32)')
    parser.add_argument('--atol', type=float, default=1e-4,
                        help='largest accepted absolute difference of '
                        'backbone and dense outputs')
    parser.add_argument('--image', action='append', default=[],
                        help='an image for --verify / --benchmark of a whole '
                        'model (repeatable)')
    parser.add_argument(
        '--benchmark', action='store_true',
        help='whole models: latency of PyTorch (eval and deployed) and '
        'onnxruntime on the first image, interleaved')
    parser.add_argument('--repeat', type=int, default=10,
                        help='timed runs of --benchmark')
    parser.add_argument('--threads', type=int,
                        help='CPU threads of PyTorch and onnxruntime')
    parser.add_argument('--overlay', action='append', default=[],
                        metavar='FILE', help='a config file merged over the '
                        'config (repeatable)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value')
    args = parser.parse_args(argv)
    try:
        check_export_args(args)
    except ToolError as exc:
        parser.error(str(exc))
    return args


def latency_end_to_end(cfg, models, onnx_file, image, repeat=10, warmup=2,
                       threads=None):
    """Milliseconds (median, min, max) of one image's prediction from its
    preprocessed input: each PyTorch model of ``models`` ({name: model},
    ``predict``) and onnxruntime (graph plus the per-image steps of
    :class:`~mmvit.export.predictor.OnnxPredictor`), interleaved in every
    repeat."""
    from mmvit.export.predictor import OnnxPredictor
    predictor = OnnxPredictor(cfg, onnx_file, threads)
    inputs, samples = predictor.preprocess(image)
    runs = {name: (lambda m=model: m.predict(inputs,
                                             copy.deepcopy(samples)))
            for name, model in models.items()}
    runs['onnxruntime'] = lambda: predictor.run(inputs,
                                                copy.deepcopy(samples))
    times = {name: [] for name in runs}
    with torch.no_grad():
        for i in range(warmup + repeat):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                if i >= warmup:
                    times[name].append(time.perf_counter() - start)
    return {name: summarize(t) for name, t in times.items()}, \
        tuple(inputs.shape[2:])


def print_latency(times, image, size, threads, repeat):
    """Print :func:`latency_end_to_end`'s numbers, each with its ratio to
    PyTorch's eval model."""
    print(f'latency of one image ({osp.basename(image)}, input '
          f'{size[0]}x{size[1]}, {threads or "default"} threads, median '
          f'(min-max) of {repeat}, interleaved):')
    base = times['PyTorch eval'][0]
    for name, (median, low, high) in times.items():
        print(f'  {name:17s} {median:9.1f} ms ({low:.1f}-{high:.1f})  '
              f'{base / median:.2f}x')


def export_backbone_or_dense(args):
    """What ``tools/deployment/pytorch2onnx.py`` does for ``--backbone``,
    or for a RetinaNet config with ``--dense-outputs``; the exit status."""
    import torch

    from mmvit.deploy import switch_to_deploy
    if args.backbone is not None:
        arch = args.arch or default_arch(args.backbone)
        model = build_backbone(args.backbone, arch, args.checkpoint)
        shape = tuple(args.shape or (224, 224))
        out = args.out or f'{args.backbone.lower()}_{arch}.onnx'
        kind = f'{args.backbone}-{arch}'
    else:
        model = build_detector(args.config, args.checkpoint, args.overlay,
                               args.cfg_options)
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


def export_whole_model(args):
    """What ``tools/deployment/pytorch2onnx.py`` does for a config: the
    whole model, post-processing included, then ``--verify`` and
    ``--benchmark``; the exit status."""
    import torch

    from mmvit.deploy import switch_to_deploy
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg, model = build_config_model(args.config, args.checkpoint,
                                     args.overlay, args.cfg_options)
    if args.checkpoint is None:
        print('note: no --checkpoint, exporting random weights')
    shape = tuple(args.shape or {'mmseg': (512, 512), 'mmpretrain': (
        224, 224)}.get(cfg.get('default_scope'), (800, 1216)))
    out = args.out or osp.splitext(osp.basename(args.config))[0] + '.onnx'
    deployed = model if args.no_deploy else switch_to_deploy(
        copy.deepcopy(model))
    start = time.time()
    inputs, outputs = export_end_to_end(deployed, shape, out, args.opset)
    print(f'exported the whole {type(model).__name__} of {args.config} to '
          f'{out} in {time.time() - start:.1f} s (opset {args.opset}, '
          f'dynamic height and width'
          f'{", batch" if len(inputs) == 1 else ""}); '
          f'inputs: {", ".join(inputs)}; outputs: {", ".join(outputs)}')
    if not (args.verify or args.benchmark):
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        images = args.image or synthetic_images(
            tmp, [shape, default_verify_shape(*shape)])
        status = 0
        if args.verify:
            status = report_end_to_end(verify_end_to_end(
                cfg, model, out, images, args.threads))
        if args.benchmark:
            models = {'PyTorch eval': model}
            if deployed is not model:
                models['PyTorch deployed'] = deployed
            times, size = latency_end_to_end(
                cfg, models, out, images[0], args.repeat,
                threads=args.threads)
            print_latency(times, images[0], size, args.threads, args.repeat)
    return status


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.backbone is not None or args.dense_outputs:
            return export_backbone_or_dense(args)
        return export_whole_model(args)
    except ToolError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
