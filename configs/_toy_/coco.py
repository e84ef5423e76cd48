# Built-in toy COCO data (python tools/make_toy_data.py --task coco) and a
# CPU schedule, shared by the detection overlays (retinanet.py,
# mask_rcnn.py). The backbone starts from scratch (no ImageNet checkpoint),
# so its BatchNorm layers train.
data_root = 'data/toy_coco/'
metainfo = dict(
    classes=('circle', 'square', 'triangle'),
    palette=[(220, 20, 60), (0, 130, 255), (0, 190, 60)])
img_scale = (128, 128)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]
# --tta: the toy scale, 0.75x and 1.25x, each with and without a flip
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale=s, keep_ratio=True)
             for s in [img_scale, (96, 96), (160, 160)]],
            [dict(type='RandomFlip', prob=1.),
             dict(type='RandomFlip', prob=0.)],
            [dict(type='LoadAnnotations', with_bbox=True)],
            [dict(
                type='PackDetInputs',
                meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                           'scale_factor', 'flip', 'flip_direction'))],
        ])
]
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

# from scratch: nothing frozen (mmdet's ResNet configs freeze the stem and
# stage 1 of their ImageNet weights)
model = dict(backbone=dict(init_cfg=None, norm_eval=False, frozen_stages=-1))

# 15 epochs of 50 iterations; AdamW lr 3e-4 with clipping, x0.1 at epoch 12.
# (lr 1e-3 makes the classification loss blow up after warm-up, with this
# backbone and with a ResNet-18 alike: the heads have no normalisation.)
train_cfg = dict(max_epochs=15, val_interval=15)
optim_wrapper = dict(
    optimizer=dict(lr=3e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=50),
    dict(type='MultiStepLR', begin=0, end=15, by_epoch=True,
         milestones=[12], gamma=0.1),
]
auto_scale_lr = dict(base_batch_size=8)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=5, max_keep_ckpts=2))
