"""Helpers of the built-in-data demo (``tools/run_demo.py``): the demo of
each head, the untrained baseline, loss curves and prediction grids."""
import glob
import json
import os.path as osp
import subprocess

# head -> (config, overlay, data task, data folder, metric keys, loss keys)
DEMOS = {
    'retinanet': ('configs/retinanet_cas_vit_s.py',
                  'configs/_toy_/retinanet.py', 'coco', 'data/toy_coco',
                  ['coco/bbox_mAP', 'coco/bbox_mAP_50'],
                  ['loss', 'loss_cls', 'loss_bbox']),
    'mask_rcnn': ('configs/mask_rcnn_cas_vit_s.py',
                  'configs/_toy_/mask_rcnn.py', 'coco', 'data/toy_coco',
                  ['coco/bbox_mAP', 'coco/segm_mAP'],
                  ['loss', 'loss_rpn_cls', 'loss_cls', 'loss_mask']),
    'semantic_fpn': ('configs/semantic_fpn_cas_vit_s.py',
                     'configs/_toy_/ade.py', 'ade', 'data/toy_ade',
                     ['mIoU', 'aAcc'], ['loss', 'decode.loss_ce']),
    'upernet': ('configs/upernet_cas_vit_s.py', 'configs/_toy_/upernet.py',
                'ade', 'data/toy_ade', ['mIoU', 'aAcc'],
                ['loss', 'decode.loss_ce', 'aux.loss_ce']),
}


def run(cmd, cwd=None):
    """Run a command line (printed first); an error if it fails."""
    print('+ ' + ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=cwd)


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
