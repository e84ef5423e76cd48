# CAS-ViT Mask R-CNN 1x with the paper's recipe: AdamW lr 2e-4, weight decay
# 1e-4, total batch 32 (8 GPUs x 4), FPN over all four stages, BatchNorm
# statistics frozen.
_base_ = ['./mask_rcnn_1x_coco.py', './cas_vit.py']

model = dict(
    backbone=_base_.cas_vit_backbone,
    neck=dict(in_channels=[48, 64, 128, 256], num_outs=5))
train_dataloader = dict(batch_size=4, num_workers=4)
optim_wrapper = dict(
    optimizer=dict(lr=2e-4, weight_decay=1e-4), paramwise_cfg=None)
auto_scale_lr = dict(base_batch_size=32)
