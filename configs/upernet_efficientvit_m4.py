_base_ = ['./_base_/upernet_efficientvit.py']

model = dict(
    backbone=dict(
        arch='m4',
        init_cfg=dict(checkpoint='checkpoints/efficientvit_m4.pth')),
    neck=dict(in_channels=[128, 256, 384]))
