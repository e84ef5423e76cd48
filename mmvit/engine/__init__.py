from .hooks import CastlingAnnealHook

__all__ = ['CastlingAnnealHook']
