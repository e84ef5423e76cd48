"""The built-in COCO-layout data (``tools/make_toy_data.py --task coco``)
in the layout ultralytics reads::

    OUT/images/{train2017,val2017}/*.jpg
    OUT/labels/{train2017,val2017}/*.txt   (class cx cy w h, in [0, 1])
    OUT/data.yaml
"""
import json
import os
import os.path as osp
import shutil


def coco_to_yolo(coco_root, out_dir):
    """Write the YOLO layout of the COCO-layout set ``coco_root`` (its
    ``annotations/instances_{split}2017.json`` and images) to ``out_dir``;
    return the path of its ``data.yaml``. Classes keep the order of the
    annotation file's categories (YOLO class ``i`` is the ``i``-th)."""
    names = None
    for split in ('train2017', 'val2017'):
        ann_file = osp.join(coco_root, 'annotations',
                            f'instances_{split}.json')
        if not osp.isfile(ann_file):
            raise FileNotFoundError(
                f'coco_to_yolo: {ann_file} does not exist; write the '
                'built-in set with python tools/make_toy_data.py --task coco')
        with open(ann_file) as f:
            coco = json.load(f)
        categories = sorted(coco['categories'], key=lambda c: c['id'])
        if names is None:
            names = [c['name'] for c in categories]
        label_of = {c['id']: i for i, c in enumerate(categories)}
        img_dir = osp.join(out_dir, 'images', split)
        lbl_dir = osp.join(out_dir, 'labels', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(lbl_dir, exist_ok=True)
        lines = {img['id']: [] for img in coco['images']}
        for ann in coco['annotations']:
            if ann.get('iscrowd', 0):
                continue
            lines[ann['image_id']].append(ann)
        for img in coco['images']:
            shutil.copy2(osp.join(coco_root, split, img['file_name']),
                         osp.join(img_dir, img['file_name']))
            width, height = img['width'], img['height']
            rows = []
            for ann in lines[img['id']]:
                x, y, w, h = ann['bbox']
                rows.append(f'{label_of[ann["category_id"]]} '
                            f'{(x + w / 2) / width:.6f} '
                            f'{(y + h / 2) / height:.6f} '
                            f'{w / width:.6f} {h / height:.6f}')
            stem = osp.splitext(img['file_name'])[0]
            with open(osp.join(lbl_dir, stem + '.txt'), 'w') as f:
                f.write('\n'.join(rows) + ('\n' if rows else ''))
    data_yaml = osp.join(out_dir, 'data.yaml')
    with open(data_yaml, 'w') as f:
        f.write(f'path: {osp.abspath(out_dir)}\n'
                'train: images/train2017\nval: images/val2017\nnames:\n')
        for i, name in enumerate(names):
            f.write(f'  {i}: {name}\n')
    return data_yaml
