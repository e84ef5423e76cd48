"""YOLOv8 with and without cascaded group attention: the same data and
schedule for each model (:func:`train_and_evaluate`), and latency and
parameters at one input size (:func:`benchmark`)."""
import json
import os.path as osp

import torch

from mmvit.utils.benchmark import (Options, count_params, summarize,
                                   time_forwards)
from . import build_model
from .data import coco_to_yolo
from .evaluate import coco_box_ap


def _toy_set(coco_root):
    ann_file = osp.join(coco_root, 'annotations', 'instances_val2017.json')
    with open(ann_file) as f:
        num_classes = len(json.load(f)['categories'])
    return ann_file, osp.join(coco_root, 'val2017'), num_classes


def train_and_evaluate(names, coco_root, work_dir, epochs=30, imgsz=128,
                       batch=16, seed=0, workers=0, device='cpu'):
    """Train every model of ``names`` from scratch on the COCO-layout set
    ``coco_root`` with ultralytics' recipe (the same epochs, size, batch
    and seed for all) and measure COCO box AP on its val split before and
    after; returns one row per model: dict(model, params, untrained,
    trained, weights) with the metric dicts of
    :func:`~yolov8_cga.evaluate.coco_box_ap`."""
    data_yaml = coco_to_yolo(coco_root, osp.join(work_dir, 'data'))
    ann_file, img_dir, num_classes = _toy_set(coco_root)
    rows = []
    for name in names:
        torch.manual_seed(seed)
        untrained = build_model(name, num_classes=num_classes)
        params = count_params(untrained.model)
        before = coco_box_ap(untrained, ann_file, img_dir, imgsz, device)
        yolo = build_model(name)
        yolo.train(data=data_yaml, epochs=epochs, imgsz=imgsz, batch=batch,
                   device=device, workers=workers, seed=seed,
                   deterministic=True, project=osp.abspath(work_dir),
                   name=name, exist_ok=True, plots=False, amp=False,
                   verbose=False)
        after = coco_box_ap(yolo, ann_file, img_dir, imgsz, device)
        rows.append(dict(model=name, params=params, untrained=before,
                         trained=after, weights=str(yolo.trainer.best)))
    return rows


def inference_models(name, deploy_cga=True):
    """{label: eval module} of model ``name`` as ultralytics predicts with
    it (Conv+BN fused), and for the CGA models also with the blocks
    deployed by :func:`mmvit.deploy.switch_to_deploy` (folded
    BatchNorms)."""
    from mmvit.deploy import switch_to_deploy
    torch.manual_seed(0)
    model = build_model(name).model.fuse(verbose=False).eval()
    models = {name: model}
    if deploy_cga and '-cga' in name:
        torch.manual_seed(0)
        deployed = build_model(name).model.fuse(verbose=False).eval()
        models[name + ' (CGA deployed)'] = switch_to_deploy(deployed)
    return models


def benchmark(names, size=640, repeat=10, warmup=2):
    """Interleaved eval latency at ``size`` x ``size`` (batch 1) and
    parameters of every model of ``names``: [dict(model, params, ms=(median,
    min, max))], timed by :func:`mmvit.utils.benchmark.time_forwards`."""
    modules = {}
    for name in names:
        modules.update(inference_models(name))
    opts = Options(repeat=repeat, warmup=warmup, memory=False)
    times, _ = time_forwards(modules, [(size, size)], opts)
    return [dict(model=label,
                 params=count_params(module),
                 ms=summarize(times[label][(size, size)]))
            for label, module in modules.items()]
