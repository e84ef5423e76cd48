# EfficientViT on ImageNet-1k, the official recipe (classification/main.py
# of the official code): 300 epochs, total batch 2048 (8 GPUs x 256), AdamW
# lr 1e-3 x 2048 / 512 = 4e-3, weight decay 0.025 (none on norms, biases
# and attention biases), 5 warm-up epochs from 1e-6, cosine decay to 1e-5,
# the DeiT augmentation of configs/_base_/imagenet_1k.py, EMA decay 0.99996.
# Not reproduced: the official adaptive gradient clipping (timm's AGC,
# 0.02), which mmengine does not have. Classifier: global average pool ->
# BatchNorm1d + linear (`head.bn`/`head.l`, here `head.cls.bn`/`.fc`); the
# released checkpoints have no distillation head (`head_dist`): set
# `model.head.distilled=True` for a checkpoint that has one.
_base_ = ['./imagenet_1k.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmvit.EfficientViT',
        arch='m4',
        out_indices=(2, ),
        norm_eval=False),
    head=dict(in_channels=384, with_bn=True))

optim_wrapper = dict(
    optimizer=dict(lr=4e-3, weight_decay=0.025),
    paramwise_cfg=dict(
        custom_keys={'attention_biases': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=2.5e-4, by_epoch=True, begin=0,
         end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=5,
         end=300, convert_to_iter_based=True),
]
auto_scale_lr = dict(base_batch_size=2048)
