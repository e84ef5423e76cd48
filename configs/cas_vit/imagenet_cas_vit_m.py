_base_ = ['../_base_/imagenet_cas_vit.py']

# CAS-ViT-M: ImageNet-1k top-1 82.8 in the official model zoo.
model = dict(
    backbone=dict(arch='m'),
    head=dict(in_channels=384))
