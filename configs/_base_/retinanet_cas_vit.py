# CAS-ViT RetinaNet with the paper's recipe: AdamW lr 2e-4, weight decay
# 1e-4, total batch 32 (8 GPUs x 4), BatchNorm statistics frozen (as the
# official detection code does). The FPN gets the stride-8/16/32 stages: the
# official `start_level=1` over all four stages (P3-P7, extra levels from
# the last input) without building an output norm that would receive no
# gradient (DDP stops on such parameters).
_base_ = ['./retinanet_1x_coco.py', './cas_vit.py']

model = dict(
    backbone=dict(_base_.cas_vit_backbone, out_indices=(1, 2, 3)),
    neck=dict(
        in_channels=[64, 128, 256],
        start_level=0,
        add_extra_convs='on_input',
        num_outs=5))
train_dataloader = dict(batch_size=4, num_workers=4)
optim_wrapper = dict(
    optimizer=dict(lr=2e-4, weight_decay=1e-4), paramwise_cfg=None)
auto_scale_lr = dict(base_batch_size=32)
