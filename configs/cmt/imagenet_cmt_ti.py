_base_ = ['../_base_/imagenet_cmt.py']

# CMT-TI at 160: ImageNet-1k top-1 79.0 in the official README, whose
# command this follows: batch 8 x 256, lr 8e-4 x 2048 / 512 = 3.2e-3,
# weight decay 0.05, drop path 0.1, 800 epochs, 20 warm-up epochs from
# 1e-7, cosine decay to 1e-05, no EMA.
model = dict(
    backbone=dict(arch='ti', drop_path_rate=0.1),
    neck=dict(in_channels=368))

# the base's pipelines at 160: RandomResizedCrop, then ResizeEdge to
# 160 x 256 / 224 and CenterCrop
train_pipeline = _base_.train_pipeline
train_pipeline[1].scale = 160
test_pipeline = _base_.test_pipeline
test_pipeline[1].scale = 182
test_pipeline[2].crop_size = 160
train_dataloader = dict(
    batch_size=256, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=256, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=3.2e-3, weight_decay=0.05))
param_scheduler = _base_.param_scheduler  # warm-up, then cosine decay
param_scheduler[0].start_factor = 1e-7 / 3.2e-3
param_scheduler[1].update(eta_min=1e-5, end=800)
train_cfg = dict(max_epochs=800)
auto_scale_lr = dict(base_batch_size=2048)
custom_hooks = [h for h in _base_.custom_hooks if h.type != 'EMAHook']
