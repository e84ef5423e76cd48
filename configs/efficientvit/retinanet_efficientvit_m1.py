_base_ = ['../_base_/retinanet_efficientvit.py']

model = dict(
    backbone=dict(
        arch='m1',
        init_cfg=dict(
            checkpoint='https://github.com/xinyuliu-jeffrey/EfficientViT_Model_Zoo/releases/download/v1.0/efficientvit_m1.pth')),
    neck=dict(in_channels=[128, 144, 192]))
