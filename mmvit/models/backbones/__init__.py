from .cas_vit import CASViT
from .castling_vit import CastlingViT, LinearAngularAttention
from .cmt import CMT
from .efficientvit import EfficientViT

__all__ = ['CASViT', 'CastlingViT', 'CMT', 'EfficientViT',
           'LinearAngularAttention']
