_base_ = ['./_base_/semantic_fpn_efficientvit.py']

model = dict(
    backbone=dict(
        arch='m3',
        init_cfg=dict(checkpoint='checkpoints/efficientvit_m3.pth')),
    neck=dict(in_channels=[128, 240, 320]))
