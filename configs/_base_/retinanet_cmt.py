# CMT RetinaNet 1x (the paper reports CMT-S at 44.3 box AP): FPN over the
# stride-8/16/32 stages with extra levels from the last input (P3-P7), as
# for the other families; total batch 16 (8 GPUs x 2).
_base_ = ['./retinanet_1x_coco.py', './cmt.py']

model = dict(
    backbone=dict(_base_.cmt_backbone, out_indices=(1, 2, 3)),
    neck=dict(
        in_channels=[128, 256, 512],
        start_level=0,
        add_extra_convs='on_input',
        num_outs=5))
optim_wrapper = _base_.cmt_optim_wrapper
