# Deprecated location, resolving until the next release: the config is
# configs/cas_vit/imagenet_cas_vit_xs.py.
_base_ = ['./cas_vit/imagenet_cas_vit_xs.py']
