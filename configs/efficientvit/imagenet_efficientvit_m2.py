_base_ = ['../_base_/imagenet_efficientvit.py']

# EfficientViT-M2: ImageNet-1k top-1 70.8 in the paper.
model = dict(
    backbone=dict(arch='m2'),
    head=dict(in_channels=224))
