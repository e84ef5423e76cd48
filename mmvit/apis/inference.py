"""The libraries' own Inferencers (``DetInferencer``, ``MMSegInferencer``,
``ImageClassificationInferencer``) for any mmvit config, with overlays and
``--cfg-options``, or the config a run dumped (docs/inference.md)."""
import importlib

#: the config's default_scope -> (module, Inferencer class)
INFERENCERS = {
    'mmdet': ('mmdet.apis', 'DetInferencer'),
    'mmseg': ('mmseg.apis', 'MMSegInferencer'),
    'mmpretrain': ('mmpretrain.apis', 'ImageClassificationInferencer'),
}


def load_inference_config(config, overlays=(), cfg_options=None):
    """The config of ``config`` (a file or a Config) with ``overlays`` and
    ``cfg_options`` merged."""
    from mmengine.config import Config

    from mmvit.utils.config import load_config
    if not isinstance(config, Config):
        return load_config(config, overlays, cfg_options)
    cfg = config.copy()
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def task_scope(cfg, source='config'):
    """The ``default_scope`` of ``cfg`` when an Inferencer serves it."""
    scope = cfg.get('default_scope')
    if scope not in INFERENCERS:
        raise ValueError(
            f'{source}: default_scope={scope!r} has no Inferencer here; '
            f'allowed: {", ".join(INFERENCERS)} (detection, segmentation, '
            'classification configs)')
    return scope


def init_inferencer(config, weights=None, device=None, deploy=False,
                    overlays=(), cfg_options=None, onnx=None):
    """The library's Inferencer for ``config`` with ``weights`` loaded.

    Args:
        config (str | Config): an mmvit config, a config a training run
            dumped into its work dir, or any mmdet / mmseg / mmpretrain
            config using mmvit backbones.
        weights (str, optional): the checkpoint; it must provide every
            tensor of the model (else a ``RuntimeError`` lists what is
            missing). Without it the model keeps its random initialisation.
        device (str, optional): ``'cpu'``, ``'cuda:0'``, ...; the
            Inferencer's default (CUDA when available) without it.
        deploy (bool): apply :func:`mmvit.deploy.switch_to_deploy` after
            loading (folded norms).
        overlays, cfg_options: merged over the config as in the tools.
        onnx (str, optional): a whole-model graph of
            ``tools/deployment/pytorch2onnx.py``: the Inferencer then
            predicts with it in onnxruntime
            (:class:`~mmvit.export.predictor.OnnxPredictor`).
    """
    from mmengine.registry import init_default_scope
    if deploy not in (False, True):
        raise ValueError(f'init_inferencer: deploy={deploy!r}; allowed: '
                         'False, True')
    cfg = load_inference_config(config, overlays, cfg_options)
    source = config if isinstance(config, str) else 'config'
    scope = task_scope(cfg, source)
    checkpoint = None
    if weights is not None:  # read here for its errors and the fit check
        from mmvit.utils.checkpoint import read_checkpoint
        checkpoint = read_checkpoint(weights)
    module, name = INFERENCERS[scope]
    cls = getattr(importlib.import_module(module), name)
    # an Inferencer of another library built before leaves its scope as the
    # default, and mmpretrain's pipeline is built in the default scope
    init_default_scope(scope)
    if scope == 'mmpretrain':
        inferencer = cls(model=cfg, pretrained=weights or False,
                         device=device)
    else:
        inferencer = cls(model=cfg, weights=weights, device=device)
    if checkpoint is not None:
        from mmvit.engine.checkpoint import fit_problem
        error = fit_problem(inferencer.model, checkpoint, weights,
                            use='run inference')
        if error is not None:
            raise error
    if deploy:
        from mmvit.deploy import switch_to_deploy
        switch_to_deploy(inferencer.model)
    if onnx is not None:
        from mmvit.export.predictor import OnnxPredictor
        predictor = OnnxPredictor(cfg, onnx)
        predictor.dataset_meta = inferencer.model.dataset_meta
        inferencer.model = predictor
    inferencer.mmvit_scope = scope
    return inferencer
