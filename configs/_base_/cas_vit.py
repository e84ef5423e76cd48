# The CAS-ViT backbone as every downstream config uses it: ImageNet weights
# from the official file and BatchNorm statistics frozen while fine-tuning
# (what the official detection and segmentation code does). `_delete_`
# drops the keys of the base model's ResNet.
cas_vit_backbone = dict(
    _delete_=True,
    type='mmvit.CASViT',
    arch='s',
    out_indices=(0, 1, 2, 3),
    norm_eval=True,
    drop_path_rate=0.,
    init_cfg=dict(type='Pretrained', checkpoint='checkpoints/cas_vit_s.pth'))
