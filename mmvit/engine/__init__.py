from .hooks import (CastlingAnnealHook, DeployHook, NonFiniteLossHook,
                    RandomStateHook)

__all__ = [
    'CastlingAnnealHook', 'DeployHook', 'NonFiniteLossHook', 'RandomStateHook'
]
