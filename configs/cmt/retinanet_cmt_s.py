_base_ = ['../_base_/retinanet_cmt.py']

model = dict(
    backbone=dict(
        arch='s',
        drop_path_rate=0.1,
        init_cfg=dict(
            checkpoint='https://github.com/ggjy/CMT.pytorch/releases/download/release-v1/cmt_small.pth')),
    neck=dict(in_channels=[128, 256, 512]))
