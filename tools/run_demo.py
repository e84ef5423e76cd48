#!/usr/bin/env python
"""Train and evaluate a model on the built-in data, on CPU.

``make demo`` runs the CAS-ViT-S RetinaNet demo; ``--head`` picks another
head and ``--config`` another config of that head (e.g. another backbone):

1. writes the toy data set (tools/make_toy_data.py) if it is missing;
2. evaluates the untrained model (the baseline);
3. trains the config with its toy overlay through tools/train.py;
4. evaluates the last checkpoint through tools/test.py, drawing predictions;
5. plots the loss curve, makes a PNG grid of predictions, prints a summary.

Everything lands under work_dirs/demo_<head>/ (work_dirs/demo/ for
RetinaNet; work_dirs/demo_<config name>/ with --config).
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmvit.apis.toy_demo import (DEMOS, evaluate_untrained,  # noqa: E402
                                 latest, montage, plot_losses)


def run(cmd):
    from mmvit.apis.toy_demo import run as run_command
    run_command(cmd, cwd=ROOT)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--head', choices=sorted(DEMOS), default='retinanet')
    parser.add_argument('--work-dir',
                        help='default: work_dirs/demo (RetinaNet) or '
                        'work_dirs/demo_<head>')
    parser.add_argument('--config',
                        help='a config of the chosen head (default: its '
                        'CAS-ViT-S config), e.g. configs/retinanet_cmt_s.py')
    parser.add_argument('--skip-baseline', action='store_true',
                        help='do not evaluate the untrained model')
    args = parser.parse_args()
    config, overlay, task, data, metric_keys, loss_keys = DEMOS[args.head]
    if args.config:
        name = osp.basename(args.config)
        if not name.startswith(args.head + '_'):
            parser.error(f'--config {args.config} is not a {args.head} '
                         f'config (expected configs/{args.head}_*.py)')
        config = args.config
    os.chdir(ROOT)
    start = time.time()
    if args.work_dir:
        work_dir = args.work_dir
    elif args.config:
        work_dir = f'work_dirs/demo_{osp.basename(config)[:-3]}'
    else:
        work_dir = ('work_dirs/demo' if args.head == 'retinanet' else
                    f'work_dirs/demo_{args.head}')
    py = sys.executable

    if not osp.isdir(data):
        run([py, 'tools/make_toy_data.py', '--task', task, '--out', data])

    baseline = {}
    if not args.skip_baseline:
        metrics = evaluate_untrained(config, overlay,
                                     osp.join(work_dir, 'untrained'))
        baseline = {k: float(metrics.get(k, 0.0)) for k in metric_keys}

    train_dir = osp.join(work_dir, 'train')
    shutil.rmtree(train_dir, ignore_errors=True)
    run([py, 'tools/train.py', config, '--overlay', overlay, '--work-dir',
         train_dir])
    checkpoint = osp.join(train_dir, osp.basename(open(
        osp.join(train_dir, 'last_checkpoint')).read().strip()))

    test_dir = osp.join(work_dir, 'test')
    show_dir = osp.join(work_dir, 'predictions')
    for folder in (test_dir, show_dir):
        shutil.rmtree(folder, ignore_errors=True)
    if task == 'coco':
        options = ['--cfg-options', 'default_hooks.visualization.score_thr=0.3']
    else:  # mmseg's hook draws every `interval`-th image only
        options = ['--cfg-options', 'default_hooks.visualization.interval=1']
    run([py, 'tools/test.py', config, checkpoint, '--overlay', overlay,
         '--work-dir', test_dir, '--show-dir', show_dir] + options)
    metrics_file = latest(osp.join(test_dir, '*', '*.json'))
    metrics = json.load(open(metrics_file))

    loss_png = osp.join(work_dir, 'loss_curve.png')
    plot_losses(latest(osp.join(train_dir, '*', 'vis_data', 'scalars.json')),
                loss_keys, f'{osp.basename(config)[:-3]} on the built-in data',
                loss_png)
    grid_png = osp.join(work_dir, 'predictions.png')
    montage(show_dir, grid_png)
    summary = dict(config=config, overlay=overlay, checkpoint=checkpoint)
    summary.update({k: float(metrics[k]) for k in metric_keys})
    summary.update({f'untrained {k}': v for k, v in baseline.items()})
    summary.update(metrics_json=metrics_file, loss_curve=loss_png,
                   predictions=show_dir, predictions_grid=grid_png,
                   minutes=round((time.time() - start) / 60, 1))
    with open(osp.join(work_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    print(f'\n=== mmvit demo: {osp.basename(config)} on the built-in '
          f'{task} data ===')
    for key, value in summary.items():
        print(f'{key:>24}: {value}')


if __name__ == '__main__':
    main()
