_base_ = ['../_base_/upernet_castling_vit.py']

model = dict(
    backbone=dict(
        arch='s',
        init_cfg=dict(checkpoint='checkpoints/castling_vit_s.pth')),
    decode_head=dict(in_channels=[64, 128, 320, 512]),
    auxiliary_head=dict(in_channels=320))
