from .hooks import CastlingAnnealHook, NonFiniteLossHook, RandomStateHook

__all__ = ['CastlingAnnealHook', 'NonFiniteLossHook', 'RandomStateHook']
