# Deprecated location, resolving until the next release: the config is
# configs/efficientvit/semantic_fpn_efficientvit_m3.py.
_base_ = ['./efficientvit/semantic_fpn_efficientvit_m3.py']
