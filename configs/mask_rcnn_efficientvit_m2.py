_base_ = ['./_base_/mask_rcnn_efficientvit.py']

model = dict(
    backbone=dict(
        arch='m2',
        init_cfg=dict(checkpoint='checkpoints/efficientvit_m2.pth')),
    neck=dict(in_channels=[128, 192, 224]))
