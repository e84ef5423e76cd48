# CAS-ViT on ImageNet-1k, the official recipe (classification/main.py of
# the official code and its model zoo): 300 epochs, total batch 2048
# (8 GPUs x 256), AdamW lr 6e-3, weight decay 0.05, 20 warm-up epochs from
# 0, cosine decay to 1e-6, drop path 0.1, RandAugment and label smoothing
# 0.1, no Mixup/CutMix and no random erasing (the official defaults), EMA
# with decay 0.9995. Classifier: BatchNorm (the backbone's output norm
# `norm3`, the official `norm`) -> mean over the map -> `head` and
# `dist_head` (here `head.cls` / `head.dist`), averaged at inference.
_base_ = ['./imagenet_1k.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmvit.CASViT',
        arch='s',
        out_indices=(3, ),
        norm_eval=False,
        drop_path_rate=0.1),
    neck=dict(pool='mean'),
    head=dict(in_channels=256, distilled=True),
    train_cfg=dict(_delete_=True))  # no Mixup / CutMix

bgr_mean = [103.53, 116.28, 123.675]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2,
         total_level=10, magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=[round(x) for x in bgr_mean],
                      interpolation='bicubic')),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=256,
    sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True),
    dataset=dict(pipeline=train_pipeline))

optim_wrapper = dict(optimizer=dict(lr=6e-3, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0, end=20,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=20,
         end=300, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=300)
auto_scale_lr = dict(base_batch_size=2048)
custom_hooks = _base_.mmvit_hooks + [
    dict(type='EMAHook', momentum=5e-4, update_buffers=True,
         priority='ABOVE_NORMAL'),
]
