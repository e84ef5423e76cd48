_base_ = ['../_base_/imagenet_efficientvit.py']

# EfficientViT-M0: ImageNet-1k top-1 63.2 in the paper.
model = dict(
    backbone=dict(arch='m0'),
    head=dict(in_channels=192))
