# CAS-ViT UperNet. No recipe is published: mmseg's transformer recipe of the
# base (AdamW lr 6e-5, weight decay 0.01, none on norms, 160k iterations).
_base_ = ['./upernet_160k_ade20k.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmvit.CASViT',
        arch='s',
        out_indices=(0, 1, 2, 3),
        norm_eval=True,
        drop_path_rate=0.,
        init_cfg=dict(
            type='Pretrained', checkpoint='checkpoints/cas_vit_s.pth')),
    decode_head=dict(in_channels=[48, 64, 128, 256]),
    auxiliary_head=dict(in_channels=128))
