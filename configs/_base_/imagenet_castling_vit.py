# Castling-ViT on ImageNet-1k. No official recipe or checkpoint exists for
# these PVTv2-shaped variants; this is PVTv2's (DeiT's) recipe: 300 epochs,
# total batch 1024 (8 GPUs x 128), AdamW lr 5e-4 x 1024 / 512 = 1e-3,
# weight decay 0.05, 5 warm-up epochs, cosine decay to 1e-5, drop path 0.1,
# the DeiT augmentation of configs/_base_/imagenet_1k.py, no EMA. The
# auxiliary softmax branch runs in every stage and is annealed to 0 by the
# middle of training (mmvit.CastlingAnnealHook), so the trained classifier
# is linear-angular only. Classifier: LayerNorm (the backbone's `norm3`) ->
# global average pool -> linear.
_base_ = ['./imagenet_1k.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmvit.CastlingViT',
        arch='s',
        out_indices=(3, ),
        drop_path_rate=0.1,
        aux_softmax=True,
        aux_stages=(0, 1, 2, 3)),
    head=dict(in_channels=512))

train_dataloader = dict(
    batch_size=128,
    sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True))
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=5,
         end=300, convert_to_iter_based=True),
]
auto_scale_lr = dict(base_batch_size=1024)
custom_hooks = _base_.mmvit_hooks + [
    dict(type='mmvit.CastlingAnnealHook', start=1.0, end=0.5,
         schedule='linear'),
]
