_base_ = ['./_base_/mask_rcnn_efficientvit.py']

model = dict(
    backbone=dict(
        arch='m5',
        init_cfg=dict(checkpoint='checkpoints/efficientvit_m5.pth')),
    neck=dict(in_channels=[192, 288, 384]))
