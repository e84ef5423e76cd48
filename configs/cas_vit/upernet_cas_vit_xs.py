_base_ = ['../_base_/upernet_cas_vit.py']

model = dict(
    backbone=dict(
        arch='xs',
        drop_path_rate=0.,
        init_cfg=dict(checkpoint='checkpoints/cas_vit_xs.pth')),
    decode_head=dict(in_channels=[48, 56, 112, 220]),
    auxiliary_head=dict(in_channels=112))
