_base_ = ['../_base_/upernet_cas_vit.py']

model = dict(
    backbone=dict(
        arch='t',
        drop_path_rate=0.1,
        init_cfg=dict(checkpoint='checkpoints/cas_vit_t.pth')),
    decode_head=dict(in_channels=[96, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))
