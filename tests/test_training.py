"""Training, validation, resume and testing through the real tools."""
import glob
import json
import os.path as osp

import pytest
import torch

from conftest import ROOT, run_tool
from mmvit.utils import read_checkpoint

pytestmark = pytest.mark.slow  # end-to-end runs

CONFIG = osp.join(ROOT, 'configs', 'cas_vit', 'retinanet_cas_vit_xs.py')
OVERLAY = osp.join(ROOT, 'configs', '_toy_', 'retinanet.py')


def toy_options(data_root, epochs):
    return [
        '--cfg-options',
        f'train_dataloader.dataset.data_root={data_root}/',
        f'val_dataloader.dataset.data_root={data_root}/',
        f'test_dataloader.dataset.data_root={data_root}/',
        f'val_evaluator.ann_file={data_root}/annotations/'
        'instances_val2017.json',
        f'test_evaluator.ann_file={data_root}/annotations/'
        'instances_val2017.json',
        'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False',
        f'train_cfg.max_epochs={epochs}', 'train_cfg.val_interval=1',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.checkpoint.max_keep_ckpts=3',
        'default_hooks.logger.interval=1', 'randomness.seed=0',
        # an untrained detector scores below the default 0.05
        'model.test_cfg.score_thr=0.0',
    ]


def test_train_resume_and_test(toy_coco, tmp_path):
    work = str(tmp_path / 'work')
    run_tool(['tools/train.py', CONFIG, '--overlay', OVERLAY, '--work-dir',
              work] + toy_options(toy_coco, 1))
    first = osp.join(work, 'epoch_1.pth')
    assert osp.isfile(first)
    ckpt = read_checkpoint(first)
    assert ckpt['meta']['epoch'] == 1 and ckpt['meta']['iter'] == 2
    assert any(k.startswith('backbone.stages.') for k in ckpt['state_dict'])
    # validation ran at the end of the epoch and wrote COCO metrics
    scalars = glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))
    records = [json.loads(line) for line in open(scalars[0])]
    assert any('coco/bbox_mAP' in r for r in records)
    assert any('loss' in r for r in records)

    # resume: the second run starts after epoch 1 and writes epoch 2
    proc = run_tool(['tools/train.py', CONFIG, '--overlay', OVERLAY,
                     '--work-dir', work, '--resume'] +
                    toy_options(toy_coco, 2))
    assert 'resumed epoch: 1, iter: 2' in proc.stdout + proc.stderr
    second = read_checkpoint(osp.join(work, "epoch_2.pth"))
    assert second['meta']['epoch'] == 2 and second['meta']['iter'] == 4
    assert not torch.equal(second['state_dict']['bbox_head.retina_cls.bias'],
                           ckpt['state_dict']['bbox_head.retina_cls.bias'])

    # tools/test.py evaluates the checkpoint and draws predictions
    show = tmp_path / 'show'
    out = tmp_path / 'preds.pkl'
    run_tool(['tools/test.py', CONFIG, osp.join(work, 'epoch_2.pth'),
              '--overlay', OVERLAY, '--work-dir', str(tmp_path / 'test'),
              '--show-dir', str(show), '--out', str(out)] +
             toy_options(toy_coco, 2))
    metrics = glob.glob(str(tmp_path / 'test' / '*' / '*.json'))
    assert metrics and 'coco/bbox_mAP' in json.load(open(metrics[0]))
    assert len(glob.glob(str(show / '*.jpg'))) == 4
    assert out.is_file()

    # --deploy folds the Conv+BN pairs after loading: the same AP
    run_tool(['tools/test.py', CONFIG, osp.join(work, 'epoch_2.pth'),
              '--overlay', OVERLAY, '--work-dir', str(tmp_path / 'deploy'),
              '--deploy'] + toy_options(toy_coco, 2))
    deployed = glob.glob(str(tmp_path / 'deploy' / '*' / '*.json'))
    plain = json.load(open(metrics[0]))['coco/bbox_mAP']
    assert abs(json.load(open(deployed[0]))['coco/bbox_mAP'] - plain) <= 0.01
