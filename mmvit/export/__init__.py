"""Export: size-independent layers installed before tracing
(:mod:`mmvit.export.layers`) and the ONNX exporter with its check against
onnxruntime (:mod:`mmvit.export.onnx`). Loaded on first use, so that the
export tool checks its arguments before the models are imported."""

__all__ = ['prepare_for_export', 'export_rule']


def __getattr__(name):
    if name in __all__:
        from . import layers
        return getattr(layers, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
