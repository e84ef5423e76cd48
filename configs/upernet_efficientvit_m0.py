# Deprecated location, resolving until the next release: the config is
# configs/efficientvit/upernet_efficientvit_m0.py.
_base_ = ['./efficientvit/upernet_efficientvit_m0.py']
