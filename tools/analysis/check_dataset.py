#!/usr/bin/env python
"""Report the data sets of a config: what the data set classes load and what
they skip without a word.

    python tools/analysis/check_dataset.py configs/cas_vit/retinanet_cas_vit_s.py
    python tools/analysis/check_dataset.py CONFIG --overlay configs/_toy_/retinanet.py

For each of the train, val and test data sets: the images, the instances per
class, and every annotation that mmdet's ``CocoDataset`` skips, with the
reason and a count (an unknown category, a degenerate box: width or height
below 1 or no area, a box outside the image, an ``ignore`` flag), the images
listed but missing on disk, and the model's ``num_classes`` against the data
set's classes. Exit status 1 when anything is skipped or does not match, 0
when the data is clean.
"""
import argparse
import collections
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

from mmengine.config import DictAction  # noqa: E402

SPLITS = ('train', 'val', 'test')


def skip_reason(ann, image, cat_ids):
    """Why mmdet's ``CocoDataset.parse_data_info`` drops ``ann`` of
    ``image`` (None: it is loaded), in the order it tests."""
    if ann.get('ignore', False):
        return 'ignore flag'
    x1, y1, w, h = ann['bbox']
    inter_w = max(0, min(x1 + w, image['width']) - max(x1, 0))
    inter_h = max(0, min(y1 + h, image['height']) - max(y1, 0))
    if inter_w * inter_h == 0:
        return 'box outside the image' if w >= 1 and h >= 1 else \
            'degenerate box'
    if ann.get('area', 0) <= 0 or w < 1 or h < 1:
        return 'degenerate box'
    if ann['category_id'] not in cat_ids:
        return 'unknown category'
    return None


def coco_report(ann_file, image_folder, classes):
    """Images, instances per class, skipped annotations by reason and
    missing images of a COCO annotation file."""
    with open(ann_file, encoding='utf-8') as f:
        data = json.load(f)
    names = {c['id']: c['name'] for c in data['categories']}
    cat_ids = {i for i, n in names.items() if n in classes} if classes \
        else set(names)
    images = {img['id']: img for img in data['images']}
    per_class, skipped = collections.Counter(), collections.Counter()
    for ann in data['annotations']:
        image = images.get(ann['image_id'])
        reason = 'image not listed' if image is None else skip_reason(
            ann, image, cat_ids)
        if reason:
            skipped[reason] += 1
        else:
            per_class[names[ann['category_id']]] += 1
    missing = [img['file_name'] for img in data['images'] if not osp.isfile(
        osp.join(image_folder, img['file_name']))]
    return dict(images=len(images), per_class=per_class, skipped=skipped,
                missing=missing)


def model_classes(model_cfg):
    """(dotted key, num_classes) of the model's class-predicting heads."""
    found = []

    def walk(node, path):
        if isinstance(node, dict):
            if 'num_classes' in node and not path.endswith('rpn_head'):
                found.append((f'{path}.num_classes', node['num_classes']))
            for key, value in node.items():
                walk(value, f'{path}.{key}')
    walk(model_cfg, 'model')
    return found


def dataset_class(cfg, dataset):
    """The registered class of ``dataset`` in the config's scope."""
    import importlib

    from mmengine.registry import init_default_scope
    scope = cfg.get('default_scope', 'mmdet')
    init_default_scope(scope)
    registry = importlib.import_module(f'{scope}.registry').DATASETS
    return registry.get(dataset['type'])


def check(cfg):
    """Print the report of every data set of ``cfg``; returns the number
    of problems found."""
    from tools.common import datasets
    problems = 0
    for loader, dataset in datasets(cfg):
        if loader.split('_')[0] not in SPLITS:
            continue
        root = dataset.get('data_root', '')
        classes = tuple((dataset.get('metainfo') or {}).get('classes') or
                        dataset_class(cfg, dataset).METAINFO.get('classes', ()))
        print(f'{loader}.dataset ({dataset.get("type")}, root {root!r})')
        ann = dataset.get('ann_file', '')
        if str(ann).endswith('.json'):
            prefix = (dataset.get('data_prefix') or {}).get('img', '')
            report = coco_report(osp.join(root, ann), osp.join(root, prefix),
                                 classes)
            print(f'  images: {report["images"]} ({osp.join(root, ann)})')
            for name, count in sorted(report['per_class'].items()):
                print(f'  instances of {name}: {count}')
            for reason, count in sorted(report['skipped'].items()):
                print(f'  skipped by the data set: {count} ({reason})')
                problems += count
            if report['missing']:
                print(f'  missing images: {len(report["missing"])} (e.g. '
                      f'{report["missing"][0]})')
                problems += len(report['missing'])
        for key, value in model_classes(cfg.model):
            if classes and value != len(classes):
                print(f'  {key}={value} but the data set has {len(classes)} '
                      f'classes')
                problems += 1
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--overlay', action='append', default=[],
                        metavar='FILE')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    import mmvit  # noqa: F401
    from mmvit.utils.config import load_config
    problems = check(load_config(args.config, args.overlay,
                                 args.cfg_options))
    print(f'{problems} problem(s) found' if problems else 'no problems found')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
