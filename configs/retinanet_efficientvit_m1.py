# Deprecated location, resolving until the next release: the config is
# configs/efficientvit/retinanet_efficientvit_m1.py.
_base_ = ['./efficientvit/retinanet_efficientvit_m1.py']
