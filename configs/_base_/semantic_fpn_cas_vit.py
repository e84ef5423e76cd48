# CAS-ViT Semantic FPN: the paper's recipe is the base's (AdamW lr 2e-4,
# weight decay 1e-4, poly 0.9, 40k iterations, total batch 32).
_base_ = ['./semantic_fpn_40k_ade20k.py', './cas_vit.py']

model = dict(
    backbone=_base_.cas_vit_backbone,
    neck=dict(in_channels=[48, 64, 128, 256]))
