_base_ = ['../_base_/semantic_fpn_efficientvit.py']

model = dict(
    backbone=dict(
        arch='m5',
        init_cfg=dict(
            checkpoint='https://github.com/xinyuliu-jeffrey/EfficientViT_Model_Zoo/releases/download/v1.0/efficientvit_m5.pth')),
    neck=dict(in_channels=[192, 288, 384]))
