# Overlay: any UperNet config on the built-in toy ADE20K data, on CPU.
# UperNet's 512-channel decoder costs about 13 GMAC per 128x128 image
# (Semantic FPN: 1.6), so the run is shorter than ade.py's: batch 4, 120
# iterations.
#   python tools/train.py configs/cas_vit/upernet_cas_vit_s.py \
#       --overlay configs/_toy_/upernet.py
_base_ = ['./ade.py']

train_dataloader = dict(batch_size=4)
train_cfg = dict(max_iters=120, val_interval=120)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=20),
    dict(type='PolyLR', power=0.9, eta_min=0., begin=20, end=120,
         by_epoch=False),
]
auto_scale_lr = dict(base_batch_size=4)
default_hooks = dict(checkpoint=dict(interval=120))
