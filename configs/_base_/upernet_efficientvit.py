# EfficientViT UperNet (no official segmentation code or result). UperNet
# expects strides 4-32: an EfficientViTFPN neck (256 channels, strides 4-64)
# feeds the first four levels to UPerHead and the stride-16 level to the
# auxiliary head. The base's 160k schedule and batch 16, with the
# EfficientViT optimiser.
_base_ = ['./upernet_160k_ade20k.py', './efficientvit.py']

model = dict(
    backbone=_base_.efficientvit_backbone,
    neck=_base_.efficientvit_fpn_4_64,
    decode_head=dict(in_channels=[256, 256, 256, 256], in_index=[0, 1, 2, 3]),
    auxiliary_head=dict(in_channels=256, in_index=2))
optim_wrapper = _base_.efficientvit_optim_wrapper
