_base_ = ['../_base_/imagenet_cas_vit.py']

# CAS-ViT-XS: ImageNet-1k top-1 78.3 in the official model zoo.
model = dict(
    backbone=dict(arch='xs'),
    head=dict(in_channels=220))
