# ImageNet-1k classification with mmpretrain: ImageNet at data/imagenet/ in
# mmpretrain's layout (train/<wnid>/*.JPEG, val/ with meta/val.txt, or class
# folders), top-1/top-5 accuracy. The DeiT-style recipe the four families'
# official code shares (each family base sets its own numbers): RandAugment
# rand-m9-mstd0.5-inc1, bicubic random-resized crops, random erasing 0.25,
# Mixup 0.8 / CutMix 1.0 with label smoothing 0.1, repeated augmentation,
# AdamW without decay on norms and biases, linear warm-up then cosine decay
# (per iteration here; timm steps it per epoch), EMA of the weights (its
# weights are the ones validated and saved as `state_dict`). Test: resize
# the short side to 256 (bicubic), centre crop 224.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/default_runtime.py',
    './mmvit_runtime.py',
]

model = dict(
    type='ImageClassifier',
    backbone=dict(type='mmvit.CASViT'),  # family bases set it
    neck=dict(type='mmvit.PoolNeck'),
    head=dict(
        type='mmvit.NormLinearClsHead',
        num_classes=1000,
        in_channels=None,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        topk=(1, 5)),
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0),
    ]))

# 8 GPUs x 256 images; family bases restate what differs.
train_dataloader = dict(
    batch_size=256,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='RepeatAugSampler', shuffle=True))
val_dataloader = dict(batch_size=256, num_workers=8, persistent_workers=True)
test_dataloader = val_dataloader

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=4e-3, weight_decay=0.05, eps=1e-8,
        betas=(0.9, 0.999)),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=5,
         end=300, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=10)
val_cfg = dict()
test_cfg = dict()
# `tools/train.py --auto-scale-lr` rescales lr for another total batch size.
auto_scale_lr = dict(enable=False, base_batch_size=2048)

default_hooks = dict(
    logger=_base_.mmvit_default_hooks.logger,
    checkpoint=dict(_base_.mmvit_default_hooks.checkpoint, interval=10,
                    max_keep_ckpts=3))
# The hooks of configs/_base_/mmvit_runtime.py, and the weight EMA
# (momentum = 1 - timm's decay; buffers averaged too, as timm's ModelEma).
custom_hooks = _base_.mmvit_hooks + [
    dict(type='EMAHook', momentum=4e-5, update_buffers=True,
         priority='ABOVE_NORMAL'),
]
