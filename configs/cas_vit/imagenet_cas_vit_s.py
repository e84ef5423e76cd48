_base_ = ['../_base_/imagenet_cas_vit.py']

# CAS-ViT-S: ImageNet-1k top-1 80.9 in the official model zoo.
model = dict(
    backbone=dict(arch='s'),
    head=dict(in_channels=256))
