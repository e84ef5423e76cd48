_base_ = ['../_base_/imagenet_efficientvit.py']

# EfficientViT-M3: ImageNet-1k top-1 73.4 in the paper.
model = dict(
    backbone=dict(arch='m3'),
    head=dict(in_channels=320))
