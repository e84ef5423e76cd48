from .cas_vit import CASViT
from .cmt import CMT

__all__ = ['CASViT', 'CMT']
