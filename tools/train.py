#!/usr/bin/env python
"""Train a detector, segmentor or classifier from a config.

The config's ``default_scope`` (mmdet, mmseg or mmpretrain) decides which
library builds the model, datasets and metrics; mmvit backbones are reached
as ``type='mmvit.<Name>'``. The flags follow mmdet's ``tools/train.py``.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp', action='store_true',
        help='enable automatic-mixed-precision training (bfloat16 on a '
        'CPU-only machine)')
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help='scale the learning rate with the total batch size '
        '(the config\'s auto_scale_lr.base_batch_size)')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or without a path from the '
        'latest complete checkpoint of the work dir')
    parser.add_argument(
        '--overlay', action='append', default=[], metavar='FILE',
        help='a config file merged over the config, e.g. '
        'configs/_toy_/retinanet.py for the built-in data (repeatable)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def resume_from(cfg, requested):
    """The newest complete checkpoint (a damaged newest one is skipped, with
    a message naming both; a damaged one given by name is refused)."""
    from mmvit.engine.checkpoint import find_resume_checkpoint

    def say(message):
        if os.environ.get('RANK', '0') == '0':
            print(message, file=sys.stderr, flush=True)

    path = find_resume_checkpoint(
        cfg.work_dir, None if requested == 'auto' else requested, say)
    if path is None:
        say(f'--resume: {cfg.work_dir!r} holds no checkpoint yet; training '
            'starts from scratch.')
    return path


def main(argv=None):
    args = parse_args(argv)
    import mmvit  # noqa: F401  (safe torch.load globals)
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from mmvit.utils.config import load_config
    from tools.common import (errors_explained, set_work_dir, setup_launcher,
                              shutdown_distributed, work_dir_lock)

    cfg = load_config(args.config, args.overlay, args.cfg_options)
    set_work_dir(cfg, args.work_dir, args.config)
    for key, value in (cfg.get('train_cfg') or {}).items():
        if key in ('max_epochs', 'max_iters', 'val_interval') and not (
                isinstance(value, int) and value >= 1):
            # mmengine trains zero epochs, or divides by zero, without a word
            raise ValueError(f'{args.config}: train_cfg.{key}={value!r}: an '
                             'integer >= 1 is allowed')
    if args.amp:  # mmengine's AmpOptimWrapper, or bfloat16 on a CPU
        cfg.optim_wrapper.type = 'mmvit.MixedPrecisionOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if cfg.get('compile') is True:
        # one static graph per input shape: with symbolic sizes CMT's graph
        # fails to compile at a second shape
        cfg.compile = dict(dynamic=False)
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise RuntimeError(
                f'{args.config}: --auto-scale-lr needs auto_scale_lr='
                'dict(base_batch_size=...) in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume is not None:
        cfg.resume = True
        cfg.load_from = resume_from(cfg, args.resume)
    setup_launcher(cfg, args.launcher)

    try:
        with work_dir_lock(cfg.work_dir), errors_explained(
                cfg, ('train_dataloader', 'val_dataloader')):
            runner = (Runner.from_cfg(cfg) if 'runner_type' not in cfg else
                      RUNNERS.build(cfg))
            runner.train()
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
