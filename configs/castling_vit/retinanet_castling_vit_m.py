_base_ = ['../_base_/retinanet_castling_vit.py']

model = dict(
    backbone=dict(
        arch='m',
        init_cfg=dict(checkpoint='checkpoints/castling_vit_m.pth')),
    neck=dict(in_channels=[128, 320, 512]))
