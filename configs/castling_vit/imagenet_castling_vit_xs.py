_base_ = ['../_base_/imagenet_castling_vit.py']

# Castling-ViT-XS (no published ImageNet number for this variant).
model = dict(
    backbone=dict(arch='xs'),
    head=dict(in_channels=256))
