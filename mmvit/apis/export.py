"""The steps of ``tools/deployment/pytorch2onnx.py``: export (a backbone,
a RetinaNet's dense outputs, or a whole detector or segmentor), then the
checks against onnxruntime and the latency comparison."""
import copy
import os.path as osp
import tempfile
import time

from mmvit.analysis.deploy_latency import latency_end_to_end, print_latency
from mmvit.export.onnx import (ToolError, build_backbone, build_config_model,
                               build_detector, default_arch,
                               default_verify_shape, dense_outputs,
                               describe_preprocessing, export,
                               export_end_to_end, report_end_to_end,
                               report_verification, synthetic_images,
                               verify_end_to_end)

__all__ = ['ToolError', 'export_backbone_or_dense', 'export_whole_model']


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
