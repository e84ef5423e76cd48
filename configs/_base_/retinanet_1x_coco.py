# RetinaNet 1x on COCO 2017 (data/coco/) with the CAS-ViT paper's recipe:
# AdamW lr 2e-4, weight decay 1e-4, total batch 32 (8 GPUs x 4 images),
# 12 epochs, lr x0.1 at epochs 8 and 11, 500-iteration linear warm-up.
# A model config replaces the backbone (with _delete_=True) and the FPN's
# in_channels.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]

train_dataloader = dict(batch_size=4, num_workers=4)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4))
# `tools/train.py --auto-scale-lr` rescales lr for another total batch size.
auto_scale_lr = dict(enable=False, base_batch_size=32)
