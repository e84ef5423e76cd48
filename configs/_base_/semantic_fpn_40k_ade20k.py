# Semantic FPN on ADE20K (data/ade/ADEChallengeData2016/, 150 classes,
# 512x512 crops): 40k iterations, total batch 32 (8 GPUs x 4), AdamW lr 2e-4,
# weight decay 1e-4, poly decay power 0.9 (the PVT / CAS-ViT recipe), FPN with
# four outputs and a 128-channel FPNHead. Family bases replace the backbone
# and the FPN's in_channels.
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/schedules/schedule_40k.py',
    'mmseg::_base_/default_runtime.py',
    './mmvit_runtime.py',
]
crop_size = (512, 512)

model = dict(
    pretrained=None,
    data_preprocessor=dict(size=crop_size),
    neck=dict(num_outs=4),
    decode_head=dict(num_classes=150, channels=128))
train_dataloader = dict(batch_size=4, num_workers=4)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),
    paramwise_cfg=dict(norm_decay_mult=0.))
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=0., begin=0, end=40000,
         by_epoch=False)
]
auto_scale_lr = dict(enable=False, base_batch_size=32)
train_cfg = dict(max_iters=40000, val_interval=4000)
default_hooks = dict(
    logger=_base_.mmvit_default_hooks.logger,
    checkpoint=dict(_base_.mmvit_default_hooks.checkpoint, by_epoch=False,
                    interval=4000, save_best='mIoU'))
