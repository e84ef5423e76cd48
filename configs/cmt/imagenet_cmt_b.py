_base_ = ['../_base_/imagenet_cmt.py']

# CMT-B at 256: ImageNet-1k top-1 84.5 in the official README, whose
# command this follows: batch 8 x 64, lr 5e-4 x 512 / 512 = 5e-4,
# weight decay 0.05, drop path 0.25, 300 epochs, 20 warm-up epochs from
# 1e-6, cosine decay to 2e-05, EMA decay 0.99996.
model = dict(
    backbone=dict(arch='b', drop_path_rate=0.25),
    neck=dict(in_channels=608))

# the base's pipelines at 256: RandomResizedCrop, then ResizeEdge to
# 256 x 256 / 224 and CenterCrop
train_pipeline = _base_.train_pipeline
train_pipeline[1].scale = 256
test_pipeline = _base_.test_pipeline
test_pipeline[1].scale = 292
test_pipeline[2].crop_size = 256
train_dataloader = dict(
    batch_size=64, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=5e-4, weight_decay=0.05))
param_scheduler = _base_.param_scheduler  # warm-up, then cosine decay
param_scheduler[0].start_factor = 1e-6 / 5e-4
param_scheduler[1].update(eta_min=2e-5, end=300)
train_cfg = dict(max_epochs=300)
auto_scale_lr = dict(base_batch_size=512)
custom_hooks = _base_.custom_hooks
custom_hooks[-1].momentum = 4e-5  # EMAHook: 1 - decay
