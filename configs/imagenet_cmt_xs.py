_base_ = ['./_base_/imagenet_cmt.py']

# CMT-XS at 192: ImageNet-1k top-1 81.8 in the official README, whose
# command this follows: batch 8 x 256, lr 7e-4 x 2048 / 512 = 2.8e-3,
# weight decay 0.04, drop path 0.08, 400 epochs, 20 warm-up epochs from
# 1e-6, cosine decay to 2e-05, EMA decay 0.9998.
model = dict(
    backbone=dict(arch='xs', drop_path_rate=0.08),
    neck=dict(in_channels=416))

bgr_mean = [103.53, 116.28, 123.675]
bgr_std = [57.375, 57.12, 58.395]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=192, backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2,
         total_level=10, magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=[round(x) for x in bgr_mean],
                      interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='rand',
         min_area_ratio=0.02, max_area_ratio=1 / 3, fill_color=bgr_mean,
         fill_std=bgr_std),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=219, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=192),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=256, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=256, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=0.0028, weight_decay=0.04))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.000357143, by_epoch=True, begin=0,
         end=20, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=2e-05, by_epoch=True,
         begin=20, end=400, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=400)
auto_scale_lr = dict(base_batch_size=2048)
custom_hooks = [
    dict(type='mmvit.NonFiniteLossHook'),
    dict(type='mmvit.RandomStateHook'),
    dict(type='EMAHook', momentum=0.0002, update_buffers=True,
         priority='ABOVE_NORMAL'),
]
