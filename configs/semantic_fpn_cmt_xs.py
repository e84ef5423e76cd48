# Deprecated location, resolving until the next release: the config is
# configs/cmt/semantic_fpn_cmt_xs.py.
_base_ = ['./cmt/semantic_fpn_cmt_xs.py']
