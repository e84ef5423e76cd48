_base_ = ['../_base_/upernet_castling_vit.py']

model = dict(
    backbone=dict(
        arch='xs',
        init_cfg=dict(checkpoint='checkpoints/castling_vit_xs.pth')),
    decode_head=dict(in_channels=[32, 64, 160, 256]),
    auxiliary_head=dict(in_channels=160))
