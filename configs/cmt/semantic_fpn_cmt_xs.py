_base_ = ['../_base_/semantic_fpn_cmt.py']

model = dict(
    backbone=dict(
        arch='xs',
        drop_path_rate=0.1,
        init_cfg=dict(
            checkpoint='https://github.com/ggjy/CMT.pytorch/releases/download/release-v1/cmt_xs.pth')),
    neck=dict(in_channels=[52, 104, 208, 416]))
