# Deprecated location, resolving until the next release: the config is
# configs/cmt/upernet_cmt_s.py.
_base_ = ['./cmt/upernet_cmt_s.py']
