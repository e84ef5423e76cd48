# RetinaNet 1x on COCO 2017 (data/coco/): 12 epochs, lr x0.1 at epochs 8 and
# 11, 500-iteration linear warm-up, total batch 16 (8 GPUs x 2), and the
# AdamW setting of mmdet's transformer backbones (lr 1e-4, weight decay 0.05,
# none on norms). Family bases replace the backbone (with _delete_=True),
# the FPN's in_channels and, where a paper says so, the optimiser.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    './mmvit_runtime.py',
    './det_tta.py',
]
default_hooks = _base_.mmvit_default_hooks

train_dataloader = dict(batch_size=2, num_workers=2)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.))
# `tools/train.py --auto-scale-lr` rescales lr for another total batch size.
auto_scale_lr = dict(enable=False, base_batch_size=16)
