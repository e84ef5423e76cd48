# Deprecated location, resolving until the next release: the config is
# configs/efficientvit/mask_rcnn_efficientvit_m0.py.
_base_ = ['./efficientvit/mask_rcnn_efficientvit_m0.py']
