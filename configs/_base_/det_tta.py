# Test-time augmentation of the COCO detectors (`tools/test.py --tta`):
# mmdet's recipe, three scales (the test scale 1333x800, half and 1.5x) each
# with and without a horizontal flip, merged by class-aware NMS (IoU 0.5)
# into the best 100 detections. Mask R-CNN's base merges masks as well
# (mmvit.MaskDetTTAModel).
tta_model = dict(
    type='DetTTAModel',
    tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
tta_scales = [(1333, 800), (666, 400), (2000, 1200)]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale=s, keep_ratio=True)
             for s in tta_scales],
            [dict(type='RandomFlip', prob=1.),
             dict(type='RandomFlip', prob=0.)],
            [dict(type='LoadAnnotations', with_bbox=True)],
            [dict(
                type='PackDetInputs',
                meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                           'scale_factor', 'flip', 'flip_direction'))],
        ])
]
