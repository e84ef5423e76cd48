"""COCO box AP of an ultralytics YOLO model on a COCO-layout set, with
pycocotools' COCOeval (the evaluator behind mmdet's ``CocoMetric``), so
that its numbers read like mmdet's ``coco/bbox_mAP``."""
import contextlib
import io
import json
import os.path as osp

METRICS = ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s',
           'bbox_mAP_m', 'bbox_mAP_l')


def coco_detections(yolo, ann_file, img_dir, imgsz, device='cpu'):
    """COCO result dicts of ``yolo``'s predictions on every image of
    ``ann_file`` (class ``i`` is the ``i``-th category by id); the
    thresholds are those of COCO evaluation (score 0.001, 100 boxes)."""
    with open(ann_file) as f:
        coco = json.load(f)
    category_ids = sorted(c['id'] for c in coco['categories'])
    results = []
    for img in coco['images']:
        path = osp.join(img_dir, img['file_name'])
        if not osp.isfile(path):
            raise FileNotFoundError(f'coco_detections: image {path} of '
                                    f'{ann_file} does not exist')
        pred = yolo.predict(path, imgsz=imgsz, conf=0.001, iou=0.7,
                            max_det=100, device=device, verbose=False)[0]
        boxes = pred.boxes
        for (x0, y0, x1, y1), score, cls in zip(boxes.xyxy.tolist(),
                                                boxes.conf.tolist(),
                                                boxes.cls.tolist()):
            if int(cls) >= len(category_ids):
                continue  # a class the set does not have
            results.append(dict(image_id=img['id'],
                                category_id=category_ids[int(cls)],
                                bbox=[x0, y0, x1 - x0, y1 - y0],
                                score=score))
    return results


def coco_box_ap(yolo, ann_file, img_dir, imgsz, device='cpu'):
    """{metric: value} of :data:`METRICS` (COCOeval's first six numbers)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    results = coco_detections(yolo, ann_file, img_dir, imgsz, device)
    if not results:
        return {m: 0.0 for m in METRICS}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(ann_file)
        evaluator = COCOeval(gt, gt.loadRes(results), 'bbox')
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {m: round(float(v), 4) for m, v in zip(METRICS, evaluator.stats)}
