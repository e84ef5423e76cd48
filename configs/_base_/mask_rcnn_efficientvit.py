# EfficientViT Mask R-CNN 1x (official: m4 31.0 mask AP): the neck outputs
# strides 4 and 8 (transposed levels), 16, 32 and 64; total batch 16.
_base_ = ['./mask_rcnn_1x_coco.py', './efficientvit.py']

model = dict(
    backbone=_base_.efficientvit_backbone,
    neck=dict(_base_.efficientvit_fpn_4_64, _delete_=True))
optim_wrapper = _base_.efficientvit_optim_wrapper
