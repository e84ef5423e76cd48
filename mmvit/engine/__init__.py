from .checkpoint import (AtomicCheckpointHook, AtomicLocalBackend,
                         CheckpointFitHook, find_resume_checkpoint)
from .hooks import (CastlingAnnealHook, DeployHook, MainProcessLoggerHook,
                    NonFiniteLossHook, RandomStateHook)

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'CastlingAnnealHook',
    'CheckpointFitHook', 'DeployHook', 'MainProcessLoggerHook',
    'NonFiniteLossHook', 'RandomStateHook', 'find_resume_checkpoint'
]
