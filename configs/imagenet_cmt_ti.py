# Deprecated location, resolving until the next release: the config is
# configs/cmt/imagenet_cmt_ti.py.
_base_ = ['./cmt/imagenet_cmt_ti.py']
