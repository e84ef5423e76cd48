_base_ = ['../_base_/semantic_fpn_cas_vit.py']

model = dict(
    backbone=dict(
        arch='s',
        drop_path_rate=0.,
        init_cfg=dict(checkpoint='checkpoints/cas_vit_s.pth')),
    neck=dict(in_channels=[48, 64, 128, 256]))
