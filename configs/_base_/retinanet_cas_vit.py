# CAS-ViT RetinaNet. The FPN gets the stride-8/16/32 stages only: this is the
# official `start_level=1` over all four stages (P3-P7, extra levels from
# the last input) without building an output norm that would receive no
# gradient (DDP stops on such parameters). BatchNorm statistics stay frozen
# during fine-tuning, as in the official detection code.
_base_ = ['./retinanet_1x_coco.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmvit.CASViT',
        arch='s',
        out_indices=(1, 2, 3),
        norm_eval=True,
        drop_path_rate=0.,
        init_cfg=dict(
            type='Pretrained', checkpoint='checkpoints/cas_vit_s.pth')),
    neck=dict(
        in_channels=[64, 128, 256],
        start_level=0,
        add_extra_convs='on_input',
        num_outs=5))
