_base_ = ['./_base_/imagenet_cmt.py']

# CMT-B at 256: ImageNet-1k top-1 84.5 in the official README, whose
# command this follows: batch 8 x 64, lr 5e-4 x 512 / 512 = 5e-4,
# weight decay 0.05, drop path 0.25, 300 epochs, 20 warm-up epochs from
# 1e-6, cosine decay to 2e-05, EMA decay 0.99996.
model = dict(
    backbone=dict(arch='b', drop_path_rate=0.25),
    neck=dict(in_channels=608))

bgr_mean = [103.53, 116.28, 123.675]
bgr_std = [57.375, 57.12, 58.395]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=256, backend='pillow',
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
    dict(type='ResizeEdge', scale=292, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=256),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=64, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=0.0005, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.002, by_epoch=True, begin=0,
         end=20, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=2e-05, by_epoch=True,
         begin=20, end=300, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=300)
auto_scale_lr = dict(base_batch_size=512)
custom_hooks = [
    dict(type='mmvit.NonFiniteLossHook'),
    dict(type='mmvit.RandomStateHook'),
    dict(type='EMAHook', momentum=4e-05, update_buffers=True,
         priority='ABOVE_NORMAL'),
]
