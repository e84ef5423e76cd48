_base_ = ['./_base_/mask_rcnn_cmt.py']

model = dict(
    backbone=dict(
        arch='ti',
        drop_path_rate=0.1,
        init_cfg=dict(checkpoint='checkpoints/cmt_ti.pth')),
    neck=dict(in_channels=[46, 92, 184, 368]))
