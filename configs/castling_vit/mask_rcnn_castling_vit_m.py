_base_ = ['../_base_/mask_rcnn_castling_vit.py']

model = dict(
    backbone=dict(
        arch='m',
        init_cfg=dict(checkpoint='checkpoints/castling_vit_m.pth')),
    neck=dict(in_channels=[64, 128, 320, 512]))
