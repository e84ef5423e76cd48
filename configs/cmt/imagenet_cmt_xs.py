_base_ = ['../_base_/imagenet_cmt.py']

# CMT-XS at 192: ImageNet-1k top-1 81.8 in the official README, whose
# command this follows: batch 8 x 256, lr 7e-4 x 2048 / 512 = 2.8e-3,
# weight decay 0.04, drop path 0.08, 400 epochs, 20 warm-up epochs from
# 1e-6, cosine decay to 2e-05, EMA decay 0.9998.
model = dict(
    backbone=dict(arch='xs', drop_path_rate=0.08),
    neck=dict(in_channels=416))

# the base's pipelines at 192: RandomResizedCrop, then ResizeEdge to
# 192 x 256 / 224 and CenterCrop
train_pipeline = _base_.train_pipeline
train_pipeline[1].scale = 192
test_pipeline = _base_.test_pipeline
test_pipeline[1].scale = 219
test_pipeline[2].crop_size = 192
train_dataloader = dict(
    batch_size=256, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=256, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=2.8e-3, weight_decay=0.04))
param_scheduler = _base_.param_scheduler  # warm-up, then cosine decay
param_scheduler[0].start_factor = 1e-6 / 2.8e-3
param_scheduler[1].update(eta_min=2e-5, end=400)
train_cfg = dict(max_epochs=400)
auto_scale_lr = dict(base_batch_size=2048)
custom_hooks = _base_.custom_hooks
custom_hooks[-1].momentum = 2e-4  # EMAHook: 1 - decay
