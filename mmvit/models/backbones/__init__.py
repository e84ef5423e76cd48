from .cas_vit import CASViT

__all__ = ['CASViT']
