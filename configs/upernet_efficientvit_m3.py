# Deprecated location, resolving until the next release: the config is
# configs/efficientvit/upernet_efficientvit_m3.py.
_base_ = ['./efficientvit/upernet_efficientvit_m3.py']
