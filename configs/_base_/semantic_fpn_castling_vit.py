# Castling-ViT Semantic FPN: the base's PVT recipe (AdamW lr 2e-4, weight
# decay 1e-4, poly 0.9, 40k iterations, batch 32), the annealing hook.
_base_ = ['./semantic_fpn_40k_ade20k.py', './castling_vit.py']

model = dict(
    backbone=_base_.castling_vit_backbone,
    neck=dict(in_channels=[64, 128, 320, 512]))
custom_hooks = _base_.custom_hooks + [_base_.castling_anneal_hook]
