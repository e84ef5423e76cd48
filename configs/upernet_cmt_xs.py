# Deprecated location, resolving until the next release: the config is
# configs/cmt/upernet_cmt_xs.py.
_base_ = ['./cmt/upernet_cmt_xs.py']
