_base_ = ['./_base_/imagenet_cmt.py']

# CMT-TI at 160: ImageNet-1k top-1 79.0 in the official README, whose
# command this follows: batch 8 x 256, lr 8e-4 x 2048 / 512 = 3.2e-3,
# weight decay 0.05, drop path 0.1, 800 epochs, 20 warm-up epochs from
# 1e-7, cosine decay to 1e-05, no EMA.
model = dict(
    backbone=dict(arch='ti', drop_path_rate=0.1),
    neck=dict(in_channels=368))

bgr_mean = [103.53, 116.28, 123.675]
bgr_std = [57.375, 57.12, 58.395]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=160, backend='pillow',
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
    dict(type='ResizeEdge', scale=182, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=160),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=256, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=256, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=0.0032, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=3.125e-05, by_epoch=True, begin=0,
         end=20, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-05, by_epoch=True,
         begin=20, end=800, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=800)
auto_scale_lr = dict(base_batch_size=2048)
custom_hooks = [
    dict(type='mmvit.NonFiniteLossHook'),
    dict(type='mmvit.RandomStateHook'),
]
