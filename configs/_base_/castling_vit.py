# The Castling-ViT backbone as every downstream config uses it. No ImageNet
# weights were ever released: checkpoints/castling_vit_{xs,s,m}.pth is where
# the configs expect weights you trained (e.g. with mmpretrain), by default
# a classifier checkpoint whose `backbone.` keys are taken. The auxiliary
# softmax branch is built only in the stride-16 and stride-32 stages (its
# N x N attention does not fit at detection sizes in the finer ones) and
# `CastlingAnnealHook` anneals its weight from 1 to exactly 0 by half of the
# schedule; from then on, and in every evaluation, only the linear-angular
# attention runs. `_delete_` drops the keys of the base model's ResNet.
castling_vit_backbone = dict(
    _delete_=True,
    type='mmvit.CastlingViT',
    arch='s',
    out_indices=(0, 1, 2, 3),
    drop_path_rate=0.1,
    aux_softmax=True,
    aux_stages=(2, 3),
    init_cfg=dict(type='Pretrained',
                  checkpoint='checkpoints/castling_vit_s.pth'))
castling_anneal_hook = dict(
    type='mmvit.CastlingAnnealHook', start=1.0, end=0.5, schedule='linear')
# PVTv2's detection recipe (mmdet): AdamW lr 1e-4, weight decay 1e-4, none
# on norms; total batch 16.
castling_det_optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
    paramwise_cfg=dict(norm_decay_mult=0.))
