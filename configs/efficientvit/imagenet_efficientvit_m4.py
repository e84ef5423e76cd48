_base_ = ['../_base_/imagenet_efficientvit.py']

# EfficientViT-M4: ImageNet-1k top-1 74.3 in the paper.
model = dict(
    backbone=dict(arch='m4'),
    head=dict(in_channels=384))
