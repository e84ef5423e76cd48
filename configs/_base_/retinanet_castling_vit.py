# Castling-ViT RetinaNet 1x: FPN over the stride-8/16/32 stages with extra
# levels from the last input (P3-P7), PVTv2's AdamW recipe, the annealing
# hook.
_base_ = ['./retinanet_1x_coco.py', './castling_vit.py']

model = dict(
    backbone=dict(_base_.castling_vit_backbone, out_indices=(1, 2, 3)),
    neck=dict(
        in_channels=[128, 320, 512],
        start_level=0,
        add_extra_convs='on_input',
        num_outs=5))
optim_wrapper = _base_.castling_det_optim_wrapper
custom_hooks = _base_.custom_hooks + [_base_.castling_anneal_hook]
