# EfficientViT Semantic FPN (no official segmentation code or result). The
# head expects strides 4-32: the same EfficientViTFPN as for Mask R-CNN
# makes strides 4-64 and the head reads the first four levels; the stride-64
# stage still reaches them through the FPN's top-down pathway. The base's
# 40k-iteration poly schedule and batch 32, with the EfficientViT optimiser.
_base_ = ['./semantic_fpn_40k_ade20k.py', './efficientvit.py']

model = dict(
    backbone=_base_.efficientvit_backbone,
    neck=dict(_base_.efficientvit_fpn_4_64, _delete_=True),
    decode_head=dict(in_index=[0, 1, 2, 3], feature_strides=[4, 8, 16, 32]))
optim_wrapper = _base_.efficientvit_optim_wrapper
