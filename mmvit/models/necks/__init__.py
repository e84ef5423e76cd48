from .efficientvit_fpn import EfficientViTFPN
from .pool_neck import PoolNeck

__all__ = ['EfficientViTFPN', 'PoolNeck']
