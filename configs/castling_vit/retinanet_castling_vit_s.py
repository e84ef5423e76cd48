_base_ = ['../_base_/retinanet_castling_vit.py']

model = dict(
    backbone=dict(
        arch='s',
        init_cfg=dict(checkpoint='checkpoints/castling_vit_s.pth')),
    neck=dict(in_channels=[128, 320, 512]))
