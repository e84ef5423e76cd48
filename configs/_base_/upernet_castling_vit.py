# Castling-ViT UperNet: mmseg's transformer recipe of the base (AdamW lr
# 6e-5, weight decay 0.01, 160k iterations), the annealing hook.
_base_ = ['./upernet_160k_ade20k.py', './castling_vit.py']

model = dict(
    backbone=_base_.castling_vit_backbone,
    decode_head=dict(in_channels=[64, 128, 320, 512]),
    auxiliary_head=dict(in_channels=320))
custom_hooks = _base_.custom_hooks + [_base_.castling_anneal_hook]
