# CMT Mask R-CNN 1x: FPN over all four stages; total batch 16 (8 GPUs x 2).
_base_ = ['./mask_rcnn_1x_coco.py', './cmt.py']

model = dict(
    backbone=_base_.cmt_backbone,
    neck=dict(in_channels=[64, 128, 256, 512], num_outs=5))
optim_wrapper = _base_.cmt_optim_wrapper
