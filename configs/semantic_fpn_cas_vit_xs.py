# Deprecated location, resolving until the next release: the config is
# configs/cas_vit/semantic_fpn_cas_vit_xs.py.
_base_ = ['./cas_vit/semantic_fpn_cas_vit_xs.py']
