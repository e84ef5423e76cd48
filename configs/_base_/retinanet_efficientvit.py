# EfficientViT RetinaNet 1x (official: m4 32.7 box AP): the neck outputs
# strides 8 (one transposed level), 16, 32, 64 and 128 (a stride-2 conv on
# the last backbone output); total batch 16 (8 GPUs x 2).
_base_ = ['./retinanet_1x_coco.py', './efficientvit.py']

model = dict(
    backbone=_base_.efficientvit_backbone,
    neck=dict(
        _delete_=True,
        type='mmvit.EfficientViTFPN',
        in_channels=[128, 256, 384],
        out_channels=256,
        start_level=0,
        add_extra_convs='on_input',
        num_outs=5,
        num_extra_trans_convs=1))
optim_wrapper = _base_.efficientvit_optim_wrapper
