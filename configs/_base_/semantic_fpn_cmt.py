# CMT Semantic FPN: the base's 40k-iteration poly schedule and batch 32 with
# the CMT optimiser (AdamW lr 1e-4, weight decay 0.05).
_base_ = ['./semantic_fpn_40k_ade20k.py', './cmt.py']

model = dict(
    backbone=_base_.cmt_backbone,
    neck=dict(in_channels=[64, 128, 256, 512]))
optim_wrapper = _base_.cmt_optim_wrapper
