_base_ = ['../_base_/retinanet_cas_vit.py']

model = dict(
    backbone=dict(
        arch='xs',
        drop_path_rate=0.,
        init_cfg=dict(checkpoint='checkpoints/cas_vit_xs.pth')),
    neck=dict(in_channels=[56, 112, 220]))
