# Deprecated location, resolving until the next release: the config is
# configs/cas_vit/retinanet_cas_vit_s.py.
_base_ = ['./cas_vit/retinanet_cas_vit_s.py']
