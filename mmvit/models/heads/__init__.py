"""Classifier heads; they extend mmpretrain's and are registered only where
mmpretrain is installed (``import mmvit.models`` works without it)."""
import importlib.util

__all__ = []

if importlib.util.find_spec('mmpretrain') is not None:
    from .linear_head import NormLinearClsHead  # noqa: F401
    __all__.append('NormLinearClsHead')
