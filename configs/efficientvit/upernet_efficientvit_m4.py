_base_ = ['../_base_/upernet_efficientvit.py']

model = dict(
    backbone=dict(
        arch='m4',
        init_cfg=dict(
            checkpoint='https://github.com/xinyuliu-jeffrey/EfficientViT_Model_Zoo/releases/download/v1.0/efficientvit_m4.pth')),
    neck=dict(in_channels=[128, 256, 384]))
