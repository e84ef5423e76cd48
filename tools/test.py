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

from mmengine.config import DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and metrics')
    parser.add_argument(
        '--out', type=str,
        help='dump predictions to a pickle file (detection, classification) '
        'or save prediction maps to this folder (segmentation)')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='folder where images with drawn predictions are saved')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--overlay', action='append', default=[], metavar='FILE',
        help='a config file merged over the config (repeatable)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    parser.add_argument(
        '--deploy', action='store_true',
        help='fold Conv+BN pairs and drop training-only branches after the '
        'checkpoint is loaded (mmvit.deploy.switch_to_deploy)')
    parser.add_argument(
        '--graph-mode', action='store_true',
        help='--deploy, and on CPU run each backbone as a frozen graph per '
        'input shape (mmvit.deploy.to_graph_mode; for test pipelines of one '
        'input size, e.g. classification or sliding-window segmentation)')
    parser.add_argument(
        '--tta', action='store_true',
        help='test-time augmentation: the config\'s tta_model and '
        'tta_pipeline (flip and multi-scale)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def enable_visualization(cfg, args):
    """Turn on the library's visualization hook for --show/--show-dir."""
    scope = cfg.get('default_scope', 'mmdet')
    hooks = cfg.setdefault('default_hooks', {})
    if 'visualization' not in hooks:
        raise RuntimeError(
            f'{args.config}: default_hooks.visualization is missing, so '
            '--show/--show-dir cannot draw predictions')
    hook = hooks['visualization']
    if scope == 'mmpretrain':
        hook['enable'] = True
        hook['show'] = args.show
        hook['wait_time'] = args.wait_time
        if args.show_dir:
            hook['out_dir'] = osp.abspath(args.show_dir)
        return
    hook['draw'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        if scope == 'mmseg':
            cfg.visualizer['save_dir'] = osp.abspath(args.show_dir)
        else:
            hook['test_out_dir'] = osp.abspath(args.show_dir)


def add_dump(cfg, args):
    scope = cfg.get('default_scope', 'mmdet')
    if scope == 'mmseg':
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
        return
    if not args.out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out {args.out!r}: the file must end in .pkl')
    dump_type = 'DumpDetResults' if scope == 'mmdet' else 'DumpResults'
    dump = dict(type=dump_type, out_file_path=args.out)
    evaluators = cfg.test_evaluator
    if isinstance(evaluators, (list, tuple)):
        cfg.test_evaluator = list(evaluators) + [dump]
    else:
        cfg.test_evaluator = [evaluators, dump]


def main(argv=None):
    args = parse_args(argv)
    import mmvit  # noqa: F401  (safe torch.load globals)
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from mmvit.utils.config import (check_checkpoint_file, prepare_config,
                                    shutdown_distributed, use_tta)
    from mmvit.utils.data_checks import data_errors_explained

    check_checkpoint_file(args.checkpoint, 'checkpoint')
    cfg = prepare_config(args)
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        enable_visualization(cfg, args)
    if args.out is not None:
        add_dump(cfg, args)
    if args.tta:
        use_tta(cfg, args.config)
    if args.deploy or args.graph_mode:
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
            dict(type='mmvit.DeployHook', graph=args.graph_mode)]

    try:
        with data_errors_explained(cfg, ('test', )):
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
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
