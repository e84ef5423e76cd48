# Deprecated location, resolving until the next release: the config is
# configs/cmt/mask_rcnn_cmt_xs.py.
_base_ = ['./cmt/mask_rcnn_cmt_xs.py']
