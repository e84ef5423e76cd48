_base_ = ['./_base_/upernet_efficientvit.py']

model = dict(
    backbone=dict(
        arch='m0',
        init_cfg=dict(checkpoint='checkpoints/efficientvit_m0.pth')),
    neck=dict(in_channels=[64, 128, 192]))
