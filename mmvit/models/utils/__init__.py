from .arch import check_frozen_stages, normalize_out_indices, parse_arch
from .base_backbone import MMViTBackbone
from .checkpoint import extract_state_dict, load_pretrained

__all__ = [
    'parse_arch', 'normalize_out_indices', 'check_frozen_stages', 'MMViTBackbone',
    'extract_state_dict', 'load_pretrained'
]
