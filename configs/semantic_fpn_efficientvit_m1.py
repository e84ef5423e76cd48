_base_ = ['./_base_/semantic_fpn_efficientvit.py']

model = dict(
    backbone=dict(
        arch='m1',
        init_cfg=dict(checkpoint='checkpoints/efficientvit_m1.pth')),
    neck=dict(in_channels=[128, 144, 192]))
