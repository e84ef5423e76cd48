_base_ = ['../_base_/imagenet_castling_vit.py']

# Castling-ViT-M (no published ImageNet number for this variant).
model = dict(
    backbone=dict(arch='m'),
    head=dict(in_channels=512))
