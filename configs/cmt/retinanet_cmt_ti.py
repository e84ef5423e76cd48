_base_ = ['../_base_/retinanet_cmt.py']

model = dict(
    backbone=dict(
        arch='ti',
        drop_path_rate=0.1,
        init_cfg=dict(
            checkpoint='https://github.com/ggjy/CMT.pytorch/releases/download/release-v1/cmt_tiny.pth')),
    neck=dict(in_channels=[92, 184, 368]))
