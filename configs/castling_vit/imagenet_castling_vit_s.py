_base_ = ['../_base_/imagenet_castling_vit.py']

# Castling-ViT-S (no published ImageNet number for this variant).
model = dict(
    backbone=dict(arch='s'),
    head=dict(in_channels=512))
