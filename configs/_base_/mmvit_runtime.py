# Hooks every mmvit config runs (each head base includes this file): stop on
# a NaN/inf loss (naming the iteration and the term) before a checkpoint of
# the corrupted weights is written; keep every process's RNG states in
# checkpoints so that `--resume` continues the same random streams; refuse a
# `load_from` checkpoint that does not fit the model (mmengine would go on
# with randomly initialised layers).
custom_hooks = [
    dict(type='mmvit.NonFiniteLossHook'),
    dict(type='mmvit.RandomStateHook'),
    dict(type='mmvit.CheckpointFitHook'),
]
# Every tool that reads this config imports mmvit first (mmengine's
# `custom_imports`): the upstream tools and Inferencers (DetInferencer,
# MMSegInferencer, ImageClassificationInferencer, browse_dataset, ...) then
# find the mmvit scope, and torch.load reads mmengine's checkpoints (their
# message hub) with weights_only=True, also on a config a run dumped.
custom_imports = dict(imports=['mmvit'], allow_failed_imports=False)
