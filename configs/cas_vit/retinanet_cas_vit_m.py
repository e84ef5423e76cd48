_base_ = ['../_base_/retinanet_cas_vit.py']

model = dict(
    backbone=dict(
        arch='m',
        drop_path_rate=0.1,
        init_cfg=dict(checkpoint='checkpoints/cas_vit_m.pth')),
    neck=dict(in_channels=[96, 192, 384]))
