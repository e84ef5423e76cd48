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
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

# head -> (config, overlay, data task, data folder, metric keys, loss keys)
DEMOS = {
    'retinanet': ('configs/cas_vit/retinanet_cas_vit_s.py',
                  'configs/_toy_/retinanet.py', 'coco', 'data/toy_coco',
                  ['coco/bbox_mAP', 'coco/bbox_mAP_50'],
                  ['loss', 'loss_cls', 'loss_bbox']),
    'mask_rcnn': ('configs/cas_vit/mask_rcnn_cas_vit_s.py',
                  'configs/_toy_/mask_rcnn.py', 'coco', 'data/toy_coco',
                  ['coco/bbox_mAP', 'coco/segm_mAP'],
                  ['loss', 'loss_rpn_cls', 'loss_cls', 'loss_mask']),
    'semantic_fpn': ('configs/cas_vit/semantic_fpn_cas_vit_s.py',
                     'configs/_toy_/ade.py', 'ade', 'data/toy_ade',
                     ['mIoU', 'aAcc'], ['loss', 'decode.loss_ce']),
    'upernet': ('configs/cas_vit/upernet_cas_vit_s.py', 'configs/_toy_/upernet.py',
                'ade', 'data/toy_ade', ['mIoU', 'aAcc'],
                ['loss', 'decode.loss_ce', 'aux.loss_ce']),
}


def run(cmd):
    """Run a command line (printed first); an error if it fails."""
    print('+ ' + ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def latest(pattern):
    """The newest file matching ``pattern``."""
    files = sorted(glob.glob(pattern), key=osp.getmtime)
    if not files:
        raise FileNotFoundError(f'nothing matches {pattern}')
    return files[-1]


def evaluate_untrained(config, overlay, work_dir):
    """Metrics of the randomly initialised model on the same val split.

    A detector's untrained scores lie below the usual 0.05 threshold, so it
    is evaluated with every candidate box (score_thr=0) to give it every
    chance; an empty result counts as 0.
    """
    from mmengine.runner import Runner

    from mmvit.utils.config import load_config
    cfg = load_config(config, [overlay])
    cfg.work_dir = work_dir
    cfg.load_from = None
    cfg.randomness = dict(seed=0)
    test_cfg = cfg.model.get('test_cfg') or {}
    if 'score_thr' in test_cfg:
        test_cfg.score_thr = 0.0
    if 'rcnn' in test_cfg:
        test_cfg.rcnn.score_thr = 0.0
    return Runner.from_cfg(cfg).test()


def plot_losses(scalars_file, keys, title, out_png):
    """A PNG of the ``keys`` losses of mmengine's ``scalars.json``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    records = [json.loads(line) for line in open(scalars_file)]
    records = [r for r in records if 'loss' in r and 'iter' in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in keys:
        points = [(r['iter'], r[key]) for r in records if key in r]
        if points:
            ax.plot(*zip(*points), label=key)
    ax.set_xlabel('iteration')
    ax.set_ylabel('loss')
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def montage(image_dir, out_png, count=8, columns=4, scale=2):
    """A PNG grid of the first ``count`` drawn predictions, enlarged."""
    from PIL import Image
    files = sorted(glob.glob(osp.join(image_dir, '**', '*.*g'),
                             recursive=True))[:count]
    if not files:
        raise FileNotFoundError(f'no drawn predictions in {image_dir}')
    images = [Image.open(f).convert('RGB') for f in files]
    width, height = images[0].size
    rows = (len(images) + columns - 1) // columns
    grid = Image.new('RGB', (columns * width, rows * height), 'white')
    for i, image in enumerate(images):
        grid.paste(image.resize((width, height)),
                   ((i % columns) * width, (i // columns) * height))
    grid.resize((grid.width * scale, grid.height * scale)).save(out_png)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--head', choices=sorted(DEMOS), default='retinanet')
    parser.add_argument('--work-dir',
                        help='default: work_dirs/demo (RetinaNet) or '
                        'work_dirs/demo_<head>')
    parser.add_argument('--config',
                        help='a config of the chosen head (default: its '
                        'CAS-ViT-S config), e.g. configs/cmt/retinanet_cmt_s.py')
    parser.add_argument('--skip-baseline', action='store_true',
                        help='do not evaluate the untrained model')
    args = parser.parse_args()
    config, overlay, task, data, metric_keys, loss_keys = DEMOS[args.head]
    if args.config:
        name = osp.basename(args.config)
        if not name.startswith(args.head + '_'):
            parser.error(f'--config {args.config} is not a {args.head} '
                         f'config (expected configs/<family>/{args.head}_*.py)')
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
    show_dir = osp.abspath(osp.join(work_dir, 'predictions'))
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
