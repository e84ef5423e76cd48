#!/usr/bin/env python
"""The README's main job: CAS-ViT-S RetinaNet on the built-in data, on CPU.

1. writes the toy COCO set (tools/make_toy_data.py) if it is missing;
2. evaluates the untrained model (the baseline);
3. trains configs/retinanet_cas_vit_s.py with the configs/_toy_/retinanet.py
   overlay through tools/train.py;
4. evaluates the last checkpoint through tools/test.py, drawing predictions;
5. plots the loss curve and prints a summary.

Everything lands under work_dirs/demo/.
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

CONFIG = 'configs/retinanet_cas_vit_s.py'
OVERLAY = 'configs/_toy_/retinanet.py'
DATA = 'data/toy_coco'


def run(cmd):
    print('+ ' + ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def latest(pattern):
    files = sorted(glob.glob(pattern), key=osp.getmtime)
    if not files:
        raise FileNotFoundError(f'nothing matches {pattern}')
    return files[-1]


def evaluate_untrained(work_dir):
    """bbox mAP of the randomly initialised model on the same val split.

    Its scores lie below the config's 0.05 threshold, so it is evaluated
    with every candidate box (score_thr=0) to give it every chance.
    """
    import mmvit  # noqa: F401
    from mmengine.runner import Runner

    from mmvit.utils.config import load_config
    cfg = load_config(CONFIG, [OVERLAY])
    cfg.work_dir = work_dir
    cfg.load_from = None
    cfg.randomness = dict(seed=0)
    cfg.model.test_cfg.score_thr = 0.0
    metrics = Runner.from_cfg(cfg).test()
    return metrics['coco/bbox_mAP']


def plot_losses(scalars_file, out_png):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    records = [json.loads(line) for line in open(scalars_file)]
    records = [r for r in records if 'loss' in r and 'iter' in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in ('loss', 'loss_cls', 'loss_bbox'):
        ax.plot([r['iter'] for r in records], [r[key] for r in records],
                label=key)
    ax.set_xlabel('iteration')
    ax.set_ylabel('loss')
    ax.set_title('CAS-ViT-S RetinaNet on the built-in data')
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--epochs', type=int, default=None,
                        help='override the overlay\'s number of epochs')
    args = parser.parse_args()
    os.chdir(ROOT)
    start = time.time()
    work_dir = args.work_dir
    py = sys.executable

    if not osp.isfile(osp.join(DATA, 'annotations/instances_val2017.json')):
        run([py, 'tools/make_toy_data.py', '--task', 'coco', '--out', DATA])

    baseline = evaluate_untrained(osp.join(work_dir, 'untrained'))

    train_dir = osp.join(work_dir, 'train')
    shutil.rmtree(train_dir, ignore_errors=True)
    extra = []
    if args.epochs:
        extra = ['--cfg-options', f'train_cfg.max_epochs={args.epochs}',
                 f'train_cfg.val_interval={args.epochs}']
    run([py, 'tools/train.py', CONFIG, '--overlay', OVERLAY, '--work-dir',
         train_dir] + extra)
    checkpoint = osp.join(train_dir, open(
        osp.join(train_dir, 'last_checkpoint')).read().strip().split('/')[-1])

    test_dir = osp.join(work_dir, 'test')
    shutil.rmtree(test_dir, ignore_errors=True)
    show_dir = osp.join(work_dir, 'predictions')
    shutil.rmtree(show_dir, ignore_errors=True)
    run([py, 'tools/test.py', CONFIG, checkpoint, '--overlay', OVERLAY,
         '--work-dir', test_dir, '--show-dir', show_dir,
         '--cfg-options', 'default_hooks.visualization.score_thr=0.3'])
    metrics_file = latest(osp.join(test_dir, '*', '*.json'))
    metrics = json.load(open(metrics_file))

    loss_png = osp.join(work_dir, 'loss_curve.png')
    plot_losses(latest(osp.join(train_dir, '*', 'vis_data', 'scalars.json')),
                loss_png)
    summary = dict(
        config=CONFIG, overlay=OVERLAY, checkpoint=checkpoint,
        bbox_mAP=metrics['coco/bbox_mAP'],
        bbox_mAP_50=metrics['coco/bbox_mAP_50'],
        untrained_bbox_mAP=baseline, metrics_json=metrics_file,
        loss_curve=loss_png, predictions=show_dir,
        minutes=round((time.time() - start) / 60, 1))
    with open(osp.join(work_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    print('\n=== mmvit demo: CAS-ViT-S RetinaNet on the built-in COCO-layout '
          'data ===')
    for key, value in summary.items():
        print(f'{key:>20}: {value}')


if __name__ == '__main__':
    main()
