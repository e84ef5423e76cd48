"""mmvit: efficient vision-transformer backbones for OpenMMLab 3.x."""
from .utils.safe_load import register_safe_globals

__version__ = '0.1.0'

# Checkpoints written by mmengine hold a few plain Python/numpy objects; allow
# exactly those so that every ``torch.load`` stays ``weights_only=True``.
register_safe_globals()

__all__ = ['__version__']
