# Deprecated location, resolving until the next release: the config is
# configs/efficientvit/imagenet_efficientvit_m4.py.
_base_ = ['./efficientvit/imagenet_efficientvit_m4.py']
