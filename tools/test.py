#!/usr/bin/env python
"""Evaluate a checkpoint: COCO AP (mmdet), mIoU (mmseg) or top-1 (mmpretrain).

The config's ``default_scope`` decides the library. The flags follow mmdet's
``tools/test.py``.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import ConfigDict, DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument(
        'checkpoint', help='checkpoint file; with --backend onnxruntime also '
        'a whole-model .onnx file of tools/deployment/pytorch2onnx.py')
    parser.add_argument('--work-dir', help='the dir to save logs and metrics')
    parser.add_argument('--out', help='dump predictions to a pickle file '
                        '(detection, classification) or save prediction '
                        'maps to this folder (segmentation)')
    parser.add_argument('--show', action='store_true',
                        help='show prediction results')
    parser.add_argument('--show-dir', help='folder where images with drawn '
                        'predictions are saved; a relative one under the '
                        'work dir (detection: under its timestamp folder)')
    parser.add_argument('--wait-time', type=float, default=2,
                        help='the interval of show (s)')
    parser.add_argument('--overlay', action='append', default=[],
                        metavar='FILE', help='a config file merged over the '
                        'config (repeatable)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm', 'mpi'])
    parser.add_argument('--deploy', action='store_true', help='fold norms '
                        'after loading (mmvit.deploy.switch_to_deploy)')
    parser.add_argument('--backend', choices=['pytorch', 'onnxruntime'],
                        default='pytorch', help='onnxruntime: evaluate the '
                        'exported whole model (any task); a .pth checkpoint '
                        'is deployed and exported first')
    parser.add_argument('--tta', action='store_true',
                        help='test-time augmentation (tta_model)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    onnx = args.backend == 'onnxruntime'
    if args.checkpoint.endswith('.onnx') and not onnx or onnx and args.tta:
        parser.error('an .onnx graph runs with --backend onnxruntime, which '
                     'takes no --tta')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def enable_visualization(cfg, args):
    """Turn on the library's visualization hook for --show/--show-dir."""
    scope = cfg.get('default_scope', 'mmdet')
    hook = cfg.default_hooks.visualization
    hook.update({'enable' if scope == 'mmpretrain' else 'draw': True})
    if args.show:
        hook.update(show=True, wait_time=args.wait_time)
    if args.show_dir and scope == 'mmdet':  # its hook: under the work dir
        hook['test_out_dir'] = args.show_dir
    elif args.show_dir:  # the others: under the work dir, as mmdet does
        show_dir = osp.join(cfg.work_dir, args.show_dir)
        if scope == 'mmseg':
            cfg.visualizer['save_dir'] = show_dir
        else:
            hook['out_dir'] = show_dir


def use_onnxruntime(cfg, args):
    """The runner's model becomes the onnxruntime predictor of the whole
    model; a .pth checkpoint is deployed and exported to the work dir."""
    from mmvit.export.onnx import export_checkpoint
    from mmvit.export.predictor import OnnxPredictor
    onnx_file = args.checkpoint
    if not onnx_file.endswith('.onnx'):
        onnx_file = osp.join(cfg.work_dir, osp.splitext(osp.basename(
            args.config))[0] + '.onnx')
        export_checkpoint(args.config, args.checkpoint, onnx_file,
                          args.overlay, args.cfg_options)
    cfg.model = OnnxPredictor.model_config(cfg, onnx_file)


def add_dump(cfg, args):
    """--out: the libraries' dump metric (segmentation: prediction maps)."""
    scope = cfg.get('default_scope', 'mmdet')
    if scope == 'mmseg':
        cfg.test_evaluator.update(output_dir=args.out, keep_results=True)
        return
    dump = dict(type='DumpDetResults' if scope == 'mmdet' else
                'DumpResults', out_file_path=args.out)
    evaluators = cfg.test_evaluator
    cfg.test_evaluator = (list(evaluators) if isinstance(
        evaluators, (list, tuple)) else [evaluators]) + [dump]


def use_tta(cfg):
    """--tta as in mmdet's tools/test.py: the config's tta_model around the
    model, its tta_pipeline for the test set; without them (mmdet,
    mmpretrain) the test pipeline with a horizontal flip."""
    scope = cfg.get('default_scope', 'mmdet')
    if 'tta_model' not in cfg:
        cfg.tta_model = dict(type='mmpretrain.AverageClsScoreTTA') if \
            scope == 'mmpretrain' else dict(type='DetTTAModel', tta_cfg=dict(
                nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
    if 'tta_pipeline' not in cfg:
        pipeline = cfg.test_dataloader.dataset.pipeline
        cfg.tta_pipeline = pipeline[:-1] + [dict(
            type='TestTimeAug', transforms=[[
                dict(type='RandomFlip', prob=1.),
                dict(type='RandomFlip', prob=0.)], [pipeline[-1]]])]
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline


def main(argv=None):
    args = parse_args(argv)
    import mmvit  # noqa: F401  (safe torch.load globals)
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from mmvit.utils.config import load_config
    from tools.common import (errors_explained, set_work_dir, setup_launcher,
                              shutdown_distributed)

    cfg = load_config(args.config, args.overlay, args.cfg_options)
    set_work_dir(cfg, args.work_dir, args.config)
    cfg.load_from = None if args.backend == 'onnxruntime' else args.checkpoint
    if args.backend == 'onnxruntime':
        use_onnxruntime(cfg, args)
    if args.show or args.show_dir:
        enable_visualization(cfg, args)
    if args.out is not None:
        add_dump(cfg, args)
    if args.tta:
        use_tta(cfg)
    if args.deploy and cfg.load_from:
        cfg.custom_hooks = [*cfg.get('custom_hooks', []),
                            dict(type='mmvit.DeployHook')]
    setup_launcher(cfg, args.launcher)
    try:
        with errors_explained(cfg, ('test_dataloader', )):
            runner = (Runner.from_cfg(cfg) if 'runner_type' not in cfg else
                      RUNNERS.build(cfg))
            return runner.test()
    finally:
        shutdown_distributed()


if __name__ == '__main__':
    main()
    if os.environ.get('WORLD_SIZE', '1') != '1':
        # distributed: skip interpreter teardown, where gloo's threads
        # sometimes abort a finished run (exit code -6)
        sys.stdout.flush(), sys.stderr.flush()
        os._exit(0)
