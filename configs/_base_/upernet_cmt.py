# CMT UperNet: the base's 160k-iteration schedule (1500-iteration warm-up,
# poly) and batch 16 with the CMT optimiser (AdamW lr 1e-4, weight decay
# 0.05).
_base_ = ['./upernet_160k_ade20k.py', './cmt.py']

model = dict(
    backbone=_base_.cmt_backbone,
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))
optim_wrapper = _base_.cmt_optim_wrapper
