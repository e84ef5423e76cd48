# Deprecated location, resolving until the next release: the config is
# configs/cmt/mask_rcnn_cmt_ti.py.
_base_ = ['./cmt/mask_rcnn_cmt_ti.py']
