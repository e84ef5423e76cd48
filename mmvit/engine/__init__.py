from .checkpoint import (AtomicCheckpointHook, AtomicLocalBackend,
                         CheckpointFitHook, find_resume_checkpoint)
from .hooks import (CastlingAnnealHook, DatasetCheckHook, DeployHook,
                    MainProcessLoggerHook, NonFiniteLossHook,
                    PlainParamGroupsHook, RandomStateHook)
from .optim_wrapper import MixedPrecisionOptimWrapper

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'CastlingAnnealHook',
    'CheckpointFitHook', 'DatasetCheckHook', 'DeployHook',
    'MainProcessLoggerHook',
    'MixedPrecisionOptimWrapper', 'NonFiniteLossHook', 'PlainParamGroupsHook',
    'RandomStateHook', 'find_resume_checkpoint'
]
