"""YOLOv8 with cascaded group attention (needs ultralytics: pip install -r
projects/yolov8_cga/requirements.txt)."""
import os.path as osp

import pytest
import torch


def cga_blocks(model):
    from mmvit.models.plugins import CGABlock
    return {n: m for n, m in model.named_modules() if isinstance(m, CGABlock)}


def test_yolo_models_add_exactly_the_blocks():
    """yolov8{n,s}-cga is ultralytics' yolov8{n,s} with one block after
    SPPF (the -neck models with one more on the neck's P5): the same
    parameters plus those of the blocks, the same output shapes."""
    from mmvit.models.plugins import CGABlock
    from yolov8_cga import build_model
    x = torch.rand(1, 3, 128, 160)
    for scale, channels in (('n', 256), ('s', 512)):
        plain = build_model(f'yolov8{scale}').model.eval()
        block = sum(p.numel() for p in CGABlock(channels, 4).parameters())
        count = sum(p.numel() for p in plain.parameters())
        with torch.no_grad():
            reference = plain(x)[0].shape
        for suffix, blocks in (('-cga', 1), ('-cga-neck', 2)):
            model = build_model(f'yolov8{scale}{suffix}').model.eval()
            found = cga_blocks(model)
            assert len(found) == blocks
            assert all(b.in_channels == channels for b in found.values())
            assert sum(p.numel() for p in model.parameters()) == \
                count + blocks * block
            with torch.no_grad():
                assert model(x)[0].shape == reference


def test_yolo_unknown_model_and_missing_set(tmp_path):
    from yolov8_cga import model_yaml
    from yolov8_cga.data import coco_to_yolo
    with pytest.raises(ValueError, match='yolov8n-cga'):
        model_yaml('yolov8x-cga')
    with pytest.raises(FileNotFoundError, match='make_toy_data'):
        coco_to_yolo(str(tmp_path / 'nowhere'), str(tmp_path / 'out'))


def test_yolo_layout_of_the_toy_set(toy_coco, tmp_path):
    """Every box of the COCO file is one label line (class, centre and
    size normalised), for every image."""
    import json
    from yolov8_cga.data import coco_to_yolo
    data_yaml = coco_to_yolo(toy_coco, str(tmp_path / 'yolo'))
    text = open(data_yaml).read()
    assert 'names:\n  0: circle\n  1: square\n  2: triangle\n' in text
    coco = json.load(open(osp.join(toy_coco, 'annotations',
                                   'instances_train2017.json')))
    for img in coco['images']:
        stem = osp.splitext(img['file_name'])[0]
        lines = open(tmp_path / 'yolo' / 'labels' / 'train2017' /
                     f'{stem}.txt').read().split('\n')[:-1]
        anns = [a for a in coco['annotations'] if a['image_id'] == img['id']]
        assert len(lines) == len(anns)
        for line, ann in zip(lines, anns):
            cls, cx, cy, w, h = line.split()
            x, y, bw, bh = ann['bbox']
            assert int(cls) == ann['category_id'] - 1
            assert abs(float(cx) * img['width'] - (x + bw / 2)) < 1e-3
            assert abs(float(h) * img['height'] - bh) < 1e-3
        assert osp.isfile(tmp_path / 'yolo' / 'images' / 'train2017' /
                          img['file_name'])


def test_yolo_cga_trains_and_is_evaluated_with_coco_ap(toy_coco, tmp_path):
    """ultralytics trains the CGA model on the toy set (its own trainer and
    recipe), and COCOeval scores the untrained and the trained model."""
    from yolov8_cga.compare import train_and_evaluate
    from yolov8_cga.evaluate import METRICS
    row, = train_and_evaluate(['yolov8n-cga'], toy_coco, str(tmp_path),
                              epochs=1, imgsz=64, batch=4)
    assert set(row['untrained']) == set(row['trained']) == set(METRICS)
    # COCOeval's -1: no ground truth of that size
    assert all(0 <= v <= 1 or v == -1 for v in row['trained'].values())
    assert 0 <= row['trained']['bbox_mAP'] <= 1
    assert osp.isfile(row['weights'])
    from yolov8_cga import register
    register()
    from ultralytics import YOLO
    trained = YOLO(row['weights'])  # the saved model has its blocks
    assert len(cga_blocks(trained.model)) == 1
