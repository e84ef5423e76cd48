"""The data tool writes deterministic sets that the real datasets read."""
import filecmp
import json
import os.path as osp
import subprocess
import sys

import numpy as np
from PIL import Image

from conftest import ROOT


def test_coco_layout_is_deterministic_and_read_by_cocodataset(
        toy_coco, tmp_path):
    again = tmp_path / 'again'
    subprocess.run([
        sys.executable, osp.join(ROOT, 'tools', 'make_toy_data.py'),
        '--task', 'coco', '--out', str(again), '--num-train', '8',
        '--num-val', '4', '--size', '96'
    ], check=True)
    for rel in ('annotations/instances_train2017.json',
                'train2017/train_000003.jpg', 'val2017/val_000004.jpg'):
        assert filecmp.cmp(osp.join(toy_coco, rel), again / rel,
                           shallow=False), rel

    ann = json.load(open(osp.join(toy_coco,
                                  'annotations/instances_train2017.json')))
    assert len(ann['images']) == 8
    assert {c['name'] for c in ann['categories']} == {'circle', 'square',
                                                      'triangle'}
    sizes = [max(a['bbox'][2:]) for a in ann['annotations']]
    assert max(sizes) > 1.5 * min(sizes)  # several object sizes
    assert all(0 <= a['bbox'][0] and a['bbox'][0] + a['bbox'][2] <= 96
               for a in ann['annotations'])  # whole objects, none clipped
    assert all(len(a['segmentation'][0]) >= 6 for a in ann['annotations'])

    from mmdet.datasets import CocoDataset
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    dataset = CocoDataset(
        data_root=toy_coco + '/',
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        metainfo=dict(classes=('circle', 'square', 'triangle')),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True)
        ])
    sample = dataset[0]
    assert sample['img'].shape == (96, 96, 3)
    assert len(sample['gt_bboxes']) == len(sample['gt_masks']) > 0
    masks = sample['gt_masks'].to_ndarray()
    assert masks.shape[1:] == (96, 96) and masks.any()


def test_ade_layout_read_by_ade20kdataset(toy_ade):
    from mmengine.registry import init_default_scope
    from mmseg.datasets import ADE20KDataset
    init_default_scope('mmseg')
    dataset = ADE20KDataset(
        data_root=toy_ade + '/',
        data_prefix=dict(img_path='images/validation',
                         seg_map_path='annotations/validation'),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', reduce_zero_label=True)
        ])
    assert len(dataset) == 2
    sample = dataset[0]
    labels = np.unique(sample['gt_seg_map'])
    # sky (3) and floor (4) become 2 and 3; border pixels (0) become 255
    assert {2, 3, 255} <= set(labels.tolist())
    assert set(labels.tolist()) <= {1, 2, 3, 4, 16, 255}
    raw = np.array(Image.open(osp.join(
        toy_ade, 'annotations/validation/ADE_toy_validation_000001.png')))
    assert raw.dtype == np.uint8 and raw.shape == (64, 64)
