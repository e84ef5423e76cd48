_base_ = ['./_base_/retinanet_cmt.py']

model = dict(
    backbone=dict(
        arch='s',
        drop_path_rate=0.1,
        init_cfg=dict(checkpoint='checkpoints/cmt_s.pth')),
    neck=dict(in_channels=[128, 256, 512]))
