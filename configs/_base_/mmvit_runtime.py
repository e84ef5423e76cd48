# What every mmvit config runs (each head base includes this file).
# Checkpoints are written atomically and the oldest is removed only once the
# new one is complete; the test metrics file is written by the main process
# only. (Each head base sets `default_hooks = _base_.mmvit_default_hooks`:
# the libraries' runtime bases define `default_hooks` too.)
mmvit_default_hooks = dict(
    logger=dict(type='mmvit.MainProcessLoggerHook'),
    checkpoint=dict(type='mmvit.AtomicCheckpointHook'))
# Stop on a NaN/inf loss (naming the iteration and the term) before a
# checkpoint of the corrupted weights is written; keep every process's RNG
# states in checkpoints so that `--resume` continues the same random streams;
# refuse a loaded checkpoint that does not fit the model (mmengine would go
# on with randomly initialised layers); plain-dict parameter groups, which
# `compile=True` needs; stop when a head's num_classes differs from the
# training set's classes and say how many annotations the data set skipped.
mmvit_hooks = [
    dict(type='mmvit.NonFiniteLossHook'),
    dict(type='mmvit.RandomStateHook'),
    dict(type='mmvit.CheckpointFitHook'),
    dict(type='mmvit.PlainParamGroupsHook'),
    dict(type='mmvit.DatasetCheckHook'),
]
custom_hooks = mmvit_hooks
# Every tool that reads this config imports mmvit first (mmengine's
# `custom_imports`): the upstream tools and Inferencers (DetInferencer,
# MMSegInferencer, ImageClassificationInferencer, browse_dataset, ...) then
# find the mmvit scope, and torch.load reads mmengine's checkpoints (their
# message hub) with weights_only=True, also on a config a run dumped.
custom_imports = dict(imports=['mmvit'], allow_failed_imports=False)
