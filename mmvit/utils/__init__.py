from .checkpoint import read_checkpoint, register_safe_globals

__all__ = ['read_checkpoint', 'register_safe_globals']
