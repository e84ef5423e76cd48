# CAS-ViT UperNet. No recipe is published: mmseg's transformer recipe of the
# base (AdamW lr 6e-5, weight decay 0.01, none on norms, 160k iterations).
_base_ = ['./upernet_160k_ade20k.py', './cas_vit.py']

model = dict(
    backbone=_base_.cas_vit_backbone,
    decode_head=dict(in_channels=[48, 64, 128, 256]),
    auxiliary_head=dict(in_channels=128))
