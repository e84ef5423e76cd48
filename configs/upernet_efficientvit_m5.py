_base_ = ['./_base_/upernet_efficientvit.py']

model = dict(
    backbone=dict(
        arch='m5',
        init_cfg=dict(checkpoint='checkpoints/efficientvit_m5.pth')),
    neck=dict(in_channels=[192, 288, 384]))
