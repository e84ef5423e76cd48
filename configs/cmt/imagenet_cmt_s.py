_base_ = ['../_base_/imagenet_cmt.py']

# CMT-S at 224: ImageNet-1k top-1 83.5 in the official README.
model = dict(backbone=dict(arch='s'))
