from .safe_load import register_safe_globals, safe_torch_load

__all__ = ['register_safe_globals', 'safe_torch_load']
