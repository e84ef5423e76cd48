# The CMT backbone as every downstream config uses it: ImageNet weights from
# the official file (ggjy/CMT.pytorch release-v1 `cmt_small.pth`, likewise
# cmt_tiny, cmt_xs, cmt_base; downloaded once into the torch hub cache),
# BatchNorm statistics of the stem, IRFFNs and key/value reductions
# frozen while fine-tuning with small per-GPU batches. `_delete_` drops the
# keys of the base model's ResNet. No downstream recipe was released; the
# optimiser is the 1x AdamW recipe of mmdet's transformer backbones (lr 1e-4,
# weight decay 0.05), with no decay on norms or on the per-stage relative
# position bias tables (`pos_bias`).
cmt_backbone = dict(
    _delete_=True,
    type='mmvit.CMT',
    arch='s',
    out_indices=(0, 1, 2, 3),
    norm_eval=True,
    drop_path_rate=0.1,
    init_cfg=dict(type='Pretrained', checkpoint='https://github.com/ggjy/CMT.pytorch/releases/download/release-v1/cmt_small.pth'))
cmt_optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                   weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0., custom_keys={'pos_bias': dict(decay_mult=0.)}))
