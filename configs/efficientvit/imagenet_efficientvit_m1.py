_base_ = ['../_base_/imagenet_efficientvit.py']

# EfficientViT-M1: ImageNet-1k top-1 68.4 in the paper.
model = dict(
    backbone=dict(arch='m1'),
    head=dict(in_channels=192))
