# The EfficientViT backbone and neck as every downstream config uses them,
# with the official downstream recipe: ImageNet weights from the official
# file (EfficientViT_Model_Zoo release v1.0, downloaded once into the torch
# hub cache), BatchNorm statistics frozen, nothing
# frozen otherwise, AdamW lr 1e-4, betas (0.9, 0.999), weight decay 0.05
# with none on the attention bias tables (`attention_biases`).
# The backbone's stages are at strides 16, 32, 64; `EfficientViTFPN` adds
# finer levels with transposed convolutions, as the official neck does.
# `_delete_` drops the keys of the base model's ResNet and FPN.
efficientvit_backbone = dict(
    _delete_=True,
    type='mmvit.EfficientViT',
    arch='m4',
    out_indices=(0, 1, 2),
    frozen_stages=-1,
    norm_eval=True,
    init_cfg=dict(
        type='Pretrained', checkpoint='https://github.com/xinyuliu-jeffrey/EfficientViT_Model_Zoo/releases/download/v1.0/efficientvit_m4.pth'))
efficientvit_optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                   weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'attention_biases': dict(decay_mult=0.)}))
# strides 4, 8 (transposed), 16, 32, 64: Mask R-CNN, Semantic FPN, UperNet
# (bases with an FPN of their own add `_delete_=True`)
efficientvit_fpn_4_64 = dict(
    type='mmvit.EfficientViTFPN',
    in_channels=[128, 256, 384],
    out_channels=256,
    start_level=0,
    num_outs=5,
    num_extra_trans_convs=2)
