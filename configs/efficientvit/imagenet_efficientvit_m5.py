_base_ = ['../_base_/imagenet_efficientvit.py']

# EfficientViT-M5: ImageNet-1k top-1 77.1 in the paper.
model = dict(
    backbone=dict(arch='m5'),
    head=dict(in_channels=384))
