"""Test-time augmentation wrappers that extend the libraries' own; registered
only where mmdet is installed (``import mmvit.models`` works without it)."""
import importlib.util

__all__ = []

if importlib.util.find_spec('mmdet') is not None:
    from .det_tta import MaskDetTTAModel  # noqa: F401
    __all__.append('MaskDetTTAModel')
