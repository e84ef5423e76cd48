_base_ = ['../_base_/imagenet_cas_vit.py']

# CAS-ViT-T: ImageNet-1k top-1 83.9 in the official model zoo.
model = dict(
    backbone=dict(arch='t'),
    head=dict(in_channels=512))
