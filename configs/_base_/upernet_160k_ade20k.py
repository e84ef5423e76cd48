# UperNet on ADE20K (data/ade/ADEChallengeData2016/, 150 classes, 512x512
# crops): 160k iterations, total batch 16 (8 GPUs x 2), AdamW lr 6e-5, weight
# decay 0.01 (none on norms), 1500-iteration linear warm-up then poly decay
# power 1.0, auxiliary FCN head on the third level: mmseg's recipe for
# transformer backbones. Family bases replace the backbone and the heads'
# in_channels.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/schedules/schedule_160k.py',
    'mmseg::_base_/default_runtime.py',
    './mmvit_runtime.py',
]
default_hooks = _base_.mmvit_default_hooks
crop_size = (512, 512)

model = dict(
    pretrained=None,
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(in_index=2, num_classes=150))
train_dataloader = dict(batch_size=2, num_workers=2)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999),
                   weight_decay=0.01),
    paramwise_cfg=dict(norm_decay_mult=0.))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
         end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0., begin=1500, end=160000,
         by_epoch=False),
]
auto_scale_lr = dict(enable=False, base_batch_size=16)
