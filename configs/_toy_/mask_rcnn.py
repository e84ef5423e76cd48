# Overlay: any Mask R-CNN config on the built-in toy COCO data (boxes and
# polygon masks), on CPU, evaluated with box and mask AP.
#   python tools/train.py configs/cas_vit/mask_rcnn_cas_vit_s.py \
#       --overlay configs/_toy_/mask_rcnn.py
_base_ = ['./coco.py']

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale={{_base_.img_scale}}, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale={{_base_.img_scale}}, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(metric=['bbox', 'segm'])
test_evaluator = val_evaluator

# At most four objects per image: 128 sampled RoIs per image instead of 512
# (and 500 proposals instead of 1000) keep the RoI heads affordable on CPU.
model = dict(
    roi_head=dict(
        bbox_head=dict(num_classes=3), mask_head=dict(num_classes=3)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=500),
        rcnn=dict(sampler=dict(num=128))))

# Mask R-CNN's RoI heads make an iteration about 4.5x as costly as
# RetinaNet's here (4.4 s against 0.96 s at batch 8 on 2 cores): 3 epochs,
# lr x0.1 at epoch 3's start.
train_cfg = dict(max_epochs=3, val_interval=3)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=50),
    dict(type='MultiStepLR', begin=0, end=3, by_epoch=True, milestones=[2],
         gamma=0.1),
]
