# Castling-ViT Mask R-CNN 1x: FPN over all four stages, PVTv2's AdamW recipe,
# the annealing hook.
_base_ = ['./mask_rcnn_1x_coco.py', './castling_vit.py']

model = dict(
    backbone=_base_.castling_vit_backbone,
    neck=dict(in_channels=[64, 128, 320, 512], num_outs=5))
optim_wrapper = _base_.castling_det_optim_wrapper
custom_hooks = _base_.custom_hooks + [_base_.castling_anneal_hook]
