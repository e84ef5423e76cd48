# Deprecated location, resolving until the next release: the config is
# configs/castling_vit/semantic_fpn_castling_vit_xs.py.
_base_ = ['./castling_vit/semantic_fpn_castling_vit_xs.py']
