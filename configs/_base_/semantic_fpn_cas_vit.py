# CAS-ViT Semantic FPN: the paper's recipe is the base's (AdamW lr 2e-4,
# weight decay 1e-4, poly 0.9, 40k iterations, total batch 32).
_base_ = ['./semantic_fpn_40k_ade20k.py']

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
    neck=dict(in_channels=[48, 64, 128, 256]))
