# Mask R-CNN R-50 FPN 1x on COCO (mmdet's config: ImageNet ResNet-50 from
# torchvision) with CGA blocks in ResNet stages 3 and 4.
#   python tools/train.py configs/cga/mask_rcnn_r50_cga.py
#   (built-in data: --overlay configs/_toy_/mask_rcnn.py)
_base_ = [
    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
    '../_base_/mmvit_runtime.py',
    '../_base_/resnet_cga_plugins.py',
]

model = dict(backbone=dict(plugins=[_base_.cga_plugin]))
