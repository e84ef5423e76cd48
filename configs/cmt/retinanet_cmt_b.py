_base_ = ['../_base_/retinanet_cmt.py']

model = dict(
    backbone=dict(
        arch='b',
        drop_path_rate=0.1,
        init_cfg=dict(
            checkpoint='https://github.com/ggjy/CMT.pytorch/releases/download/release-v1/cmt_base.pth')),
    neck=dict(in_channels=[152, 304, 608]))
