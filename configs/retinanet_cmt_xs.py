# Deprecated location, resolving until the next release: the config is
# configs/cmt/retinanet_cmt_xs.py.
_base_ = ['./cmt/retinanet_cmt_xs.py']
