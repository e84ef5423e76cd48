_base_ = ['../_base_/mask_rcnn_castling_vit.py']

model = dict(
    backbone=dict(
        arch='xs',
        init_cfg=dict(checkpoint='checkpoints/castling_vit_xs.pth')),
    neck=dict(in_channels=[32, 64, 160, 256]))
