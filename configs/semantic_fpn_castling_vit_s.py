# Deprecated location, resolving until the next release: the config is
# configs/castling_vit/semantic_fpn_castling_vit_s.py.
_base_ = ['./castling_vit/semantic_fpn_castling_vit_s.py']
