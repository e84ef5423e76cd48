from .cas_vit import CASViT
from .cmt import CMT
from .efficientvit import EfficientViT

__all__ = ['CASViT', 'CMT', 'EfficientViT']
