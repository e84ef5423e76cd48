# Deprecated location, resolving until the next release: the config is
# configs/castling_vit/retinanet_castling_vit_m.py.
_base_ = ['./castling_vit/retinanet_castling_vit_m.py']
