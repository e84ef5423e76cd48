# CMT on ImageNet-1k, the official recipe (cmt_pytorch/README.md and
# train.py of the official code, CMT-S numbers here; variant configs restate
# what differs): batch 8 GPUs x 128, AdamW lr 5e-4 x batch / 512 (1e-3),
# weight decay 0.05 (none on norms, biases and position biases), drop path
# 0.1, 300 epochs, 20 warm-up epochs from 1e-7, cosine decay to 1e-5, the
# DeiT augmentation of configs/_base_/imagenet_1k.py, EMA decay 0.99996.
# Each variant trains and is tested at its own resolution (ti 160, xs 192,
# s 224, b 256; test: short side x 256/224, centre crop). Classifier: 1x1
# conv to 1280 (`_fc`) -> BatchNorm (`_bn`) -> Swish -> global average pool
# -> dropout 0.1 -> linear (`head`); the backbone has no output norm.
_base_ = ['./imagenet_1k.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmvit.CMT',
        arch='s',
        out_indices=(3, ),
        out_norms=False,
        norm_eval=False,
        drop_path_rate=0.1),
    neck=dict(
        in_channels=512,
        out_channels=1280,
        norm_cfg=dict(type='BN'),
        act_cfg=dict(type='Swish')),
    head=dict(in_channels=1280, dropout=0.1))

train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader
optim_wrapper = dict(
    optimizer=dict(lr=1e-3, weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'pos_bias': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=20,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=20,
         end=300, convert_to_iter_based=True),
]
auto_scale_lr = dict(base_batch_size=1024)
