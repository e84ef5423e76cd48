#!/usr/bin/env python
"""Generate the small built-in datasets (COCO, ADE20K and ImageNet layouts).

    python tools/make_toy_data.py --task coco --out data/toy_coco
    python tools/make_toy_data.py --task ade --out data/toy_ade
    python tools/make_toy_data.py --task imagenet --out data/toy_imagenet

The sets are deterministic for a given seed.

COCO layout (``--task coco``)::

    DIR/annotations/instances_{train,val}2017.json
    DIR/{train,val}2017/*.jpg

Images show solid circles, squares and triangles of several sizes and colours
on a noisy plain background, with boxes and polygon masks. The real
``CocoDataset`` and ``CocoMetric`` of mmdet read them.

ADE20K layout (``--task ade``)::

    DIR/images/{training,validation}/*.jpg
    DIR/annotations/{training,validation}/*.png

Scenes of sky over floor with trees (circles), buildings (squares) and
mountains (triangles). Annotations hold ADE20K's own 1-based class indices
(sky 3, floor 4, tree 5, building 2, mountain 17) and 0 on a one-pixel border
around each object, so ``reduce_zero_label=True`` ignores those pixels as it
ignores ADE20K's unlabelled ones, and mmseg's ``ADE20KDataset`` with its 150
classes reads the set unchanged.

ImageNet layout (``--task imagenet``, as mmpretrain's ``ImageNet`` reads
it)::

    DIR/train/<class>/*.png     DIR/meta/train.txt  ("<class>/<file> <label>")
    DIR/val/*.png               DIR/meta/val.txt    ("<file> <label>")

One large shape per image on a noisy background, labelled by its kind:
circle, square, triangle or cross (labels 0-3 in that order).
"""
import argparse
import json
import math
import os
import os.path as osp

import numpy as np
from PIL import Image, ImageDraw

COCO_CLASSES = ('circle', 'square', 'triangle')


def _shape_polygon(kind, cx, cy, size):
    """Vertices (N, 2) of a shape of class ``kind`` centred at (cx, cy).

    Squares are axis-aligned and triangles stand on their base: at 16 px a
    rotated square and a rotated triangle are hard to tell apart, and the
    set is meant to be learnt in minutes.
    """
    r = size / 2
    if kind == 'circle':
        angles = np.linspace(0, 2 * math.pi, 24, endpoint=False)
    elif kind == 'square':
        angles = math.pi / 4 + np.arange(4) * math.pi / 2
        r = r * math.sqrt(2) * 0.85
    else:  # triangle, apex up (image y grows downwards)
        angles = -math.pi / 2 + np.arange(3) * 2 * math.pi / 3
        r = r * 1.15
    return np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1)


def _polygon_area(poly):
    x, y = poly[:, 0], poly[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _background(rng, height, width):
    base = rng.randint(0, 256, size=3)
    noise = rng.normal(0, 12, size=(height, width, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _distinct_colour(rng, background):
    while True:
        colour = rng.randint(0, 256, size=3)
        if np.abs(colour.astype(int) - background.astype(int)).sum() > 150:
            return tuple(int(c) for c in colour)


def make_coco_image(rng, size, min_objects=1, max_objects=4,
                    min_frac=0.125, max_frac=0.4):
    """One image and its objects: (PIL image, [(class, polygon), ...]).

    Objects measure ``min_frac`` to ``max_frac`` of the image side.
    """
    min_size, max_size = min_frac * size, max_frac * size
    height = width = size
    canvas = _background(rng, height, width)
    bg_mean = canvas.reshape(-1, 3).mean(0)
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    objects, boxes = [], []
    for _ in range(rng.randint(min_objects, max_objects + 1)):
        for _attempt in range(20):
            kind = COCO_CLASSES[rng.randint(len(COCO_CLASSES))]
            obj_size = rng.uniform(min_size, max_size)
            cx = rng.uniform(obj_size / 2 + 2, width - obj_size / 2 - 2)
            cy = rng.uniform(obj_size / 2 + 2, height - obj_size / 2 - 2)
            poly = _shape_polygon(kind, cx, cy, obj_size)
            box = np.concatenate([poly.min(0), poly.max(0)])
            inside = box[0] >= 1 and box[1] >= 1 and \
                box[2] <= width - 2 and box[3] <= height - 2
            if inside and all(box[2] < b[0] - 2 or box[0] > b[2] + 2 or
                              box[3] < b[1] - 2 or box[1] > b[3] + 2
                              for b in boxes):
                break
        else:
            continue
        boxes.append(box)
        draw.polygon([tuple(p) for p in poly],
                     fill=_distinct_colour(rng, bg_mean))
        objects.append((kind, poly))
    return image, objects


def write_coco(out_dir, num_train=400, num_val=100, size=128, seed=0):
    """Write the COCO-layout toy set; return {split: annotation file}."""
    rng = np.random.RandomState(seed)
    categories = [dict(id=i + 1, name=n) for i, n in enumerate(COCO_CLASSES)]
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    files = {}
    ann_id = 1
    for split, count in (('train', num_train), ('val', num_val)):
        img_dir = osp.join(out_dir, f'{split}2017')
        os.makedirs(img_dir, exist_ok=True)
        images, annotations = [], []
        for img_id in range(1, count + 1):
            image, objects = make_coco_image(rng, size)
            name = f'{split}_{img_id:06d}.jpg'
            image.save(osp.join(img_dir, name), quality=95)
            images.append(dict(id=img_id, file_name=name, width=size,
                               height=size))
            for kind, poly in objects:
                x0, y0 = poly.min(0)
                x1, y1 = poly.max(0)
                annotations.append(dict(
                    id=ann_id, image_id=img_id,
                    category_id=COCO_CLASSES.index(kind) + 1,
                    bbox=[round(float(v), 2)
                          for v in (x0, y0, x1 - x0, y1 - y0)],
                    area=round(_polygon_area(poly), 2),
                    segmentation=[[round(float(v), 2)
                                   for v in poly.reshape(-1)]],
                    iscrowd=0))
                ann_id += 1
        path = osp.join(out_dir, 'annotations', f'instances_{split}2017.json')
        with open(path, 'w') as f:
            json.dump(dict(images=images, annotations=annotations,
                           categories=categories), f)
        files[split] = path
    return files


# ADE20K's 1-based indices of the classes the toy scenes use.
ADE_LABELS = dict(building=2, sky=3, floor=4, tree=5, mountain=17)
_ADE_SHAPES = dict(circle='tree', square='building', triangle='mountain')


def make_ade_image(rng, size):
    """One scene: (PIL RGB image, PIL 'L' label map of ADE20K indices)."""
    height = width = size
    horizon = int(rng.uniform(0.35, 0.7) * height)
    labels = np.full((height, width), ADE_LABELS['floor'], np.uint8)
    labels[:horizon] = ADE_LABELS['sky']
    sky = np.array([rng.randint(90, 160), rng.randint(150, 210),
                    rng.randint(200, 256)])
    floor = np.array([rng.randint(90, 150), rng.randint(60, 110),
                      rng.randint(30, 80)])
    canvas = np.where(labels[..., None] == ADE_LABELS['sky'], sky, floor)
    canvas = np.clip(canvas + rng.normal(0, 10, canvas.shape), 0, 255)
    image = Image.fromarray(canvas.astype(np.uint8))
    label_img = Image.fromarray(labels)
    draw, draw_label = ImageDraw.Draw(image), ImageDraw.Draw(label_img)
    for _ in range(rng.randint(1, 5)):
        kind = COCO_CLASSES[rng.randint(len(COCO_CLASSES))]
        obj_size = rng.uniform(size * 0.15, size * 0.4)
        cx = rng.uniform(obj_size / 2, width - obj_size / 2)
        cy = rng.uniform(obj_size / 2, height - obj_size / 2)
        poly = [tuple(p) for p in _shape_polygon(kind, cx, cy, obj_size)]
        colour = tuple(int(c) for c in rng.randint(0, 256, size=3))
        draw.polygon(poly, fill=colour)
        draw_label.polygon(poly, fill=ADE_LABELS[_ADE_SHAPES[kind]], outline=0)
    return image, label_img


def write_ade(out_dir, num_train=200, num_val=50, size=128, seed=0):
    """Write the ADE20K-layout toy set; return {split: image folder}."""
    rng = np.random.RandomState(seed)
    folders = {}
    for split, count in (('training', num_train), ('validation', num_val)):
        img_dir = osp.join(out_dir, 'images', split)
        ann_dir = osp.join(out_dir, 'annotations', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for index in range(1, count + 1):
            image, labels = make_ade_image(rng, size)
            name = f'ADE_toy_{split}_{index:06d}'
            image.save(osp.join(img_dir, name + '.jpg'), quality=95)
            labels.save(osp.join(ann_dir, name + '.png'))
        folders[split] = img_dir
    return folders


IMAGENET_CLASSES = ('circle', 'square', 'triangle', 'cross')


def _cross_polygon(cx, cy, size):
    """A plus sign whose arms are a third of its size wide."""
    a, b = size / 2, size / 6
    steps = [(b, a), (b, b), (a, b), (a, -b), (b, -b), (b, -a), (-b, -a),
             (-b, -b), (-a, -b), (-a, b), (-b, b), (-b, a)]
    return [(cx + x, cy - y) for x, y in steps]


def make_imagenet_image(rng, size, label):
    """One image of class ``IMAGENET_CLASSES[label]``: a single shape of
    40-80 % of the image side at a random place and colour."""
    background = _background(rng, size, size)
    image = Image.fromarray(background)
    obj = rng.uniform(0.4, 0.8) * size
    cx = rng.uniform(obj / 2, size - obj / 2)
    cy = rng.uniform(obj / 2, size - obj / 2)
    kind = IMAGENET_CLASSES[label]
    poly = (_cross_polygon(cx, cy, obj) if kind == 'cross' else
            [tuple(p) for p in _shape_polygon(kind, cx, cy, obj)])
    colour = _distinct_colour(rng, background.reshape(-1, 3).mean(0))
    ImageDraw.Draw(image).polygon(poly, fill=colour)
    return image


def write_imagenet(out_dir, num_train=400, num_val=100, size=64, seed=0):
    """Write the ImageNet-layout toy set (classes balanced, in turn)."""
    rng = np.random.RandomState(seed)
    os.makedirs(osp.join(out_dir, 'meta'), exist_ok=True)
    folders = {}
    for split, count in (('train', num_train), ('val', num_val)):
        lines = []
        for index in range(count):
            label = index % len(IMAGENET_CLASSES)
            name = f'toy_{split}_{index:06d}.png'
            if split == 'train':
                name = f'{IMAGENET_CLASSES[label]}/{name}'
            path = osp.join(out_dir, split, name)
            os.makedirs(osp.dirname(path), exist_ok=True)
            make_imagenet_image(rng, size, label).save(path)
            lines.append(f'{name} {label}')
        with open(osp.join(out_dir, 'meta', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
        folders[split] = osp.join(out_dir, split)
    return folders


WRITERS = dict(coco=write_coco, ade=write_ade, imagenet=write_imagenet)
DEFAULT_SIZES = dict(coco=(400, 100, 128), ade=(200, 50, 128),
                     imagenet=(400, 100, 64))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--task', choices=sorted(WRITERS), default='coco',
                        help='dataset layout to write')
    parser.add_argument('--out', help='output folder (default: data/toy_<task>)')
    parser.add_argument('--num-train', type=int,
                        help='training images (coco 400, ade 200, '
                        'imagenet 400)')
    parser.add_argument('--num-val', type=int,
                        help='validation images (coco 100, ade 50, '
                        'imagenet 100)')
    parser.add_argument('--size', type=int,
                        help='image side in pixels (default 128; '
                        'imagenet 64)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    out = args.out or osp.join('data', f'toy_{args.task}')
    num_train, num_val, size = DEFAULT_SIZES[args.task]
    files = WRITERS[args.task](
        out, args.num_train or num_train, args.num_val or num_val,
        args.size or size, args.seed)
    for split, path in files.items():
        print(f'{split}: {path}')


if __name__ == '__main__':
    main()
