from .linear_head import NormLinearClsHead

__all__ = ['NormLinearClsHead']
