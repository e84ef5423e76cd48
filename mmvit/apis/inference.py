"""Inference on images, folders and videos through the libraries' own
Inferencers (``DetInferencer``, ``MMSegInferencer``,
``ImageClassificationInferencer``); the library behind ``demo/``.

Any mmvit config works, with overlays and ``--cfg-options``, and so does
the config a training run dumps into its work dir (the merged config)::

    from mmvit.apis.inference import init_inferencer
    inferencer = init_inferencer('work_dirs/x/retinanet_cas_vit_s.py',
                                 'work_dirs/x/epoch_15.pth', deploy=True)
    inferencer('demo.jpg', out_dir='outputs')   # the library's own call

:func:`infer_images` and :func:`infer_video` write drawn results and
predictions in one layout for the three tasks (``vis/`` and ``preds/``).
"""
import importlib
import json
import os
import os.path as osp

#: the config's default_scope -> (module, Inferencer class)
INFERENCERS = {
    'mmdet': ('mmdet.apis', 'DetInferencer'),
    'mmseg': ('mmseg.apis', 'MMSegInferencer'),
    'mmpretrain': ('mmpretrain.apis', 'ImageClassificationInferencer'),
}
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def load_inference_config(config, overlays=(), cfg_options=None):
    """The config of ``config`` (a file or a Config) with ``overlays`` and
    ``cfg_options`` merged and its ``mmvit.X`` types checked."""
    from mmengine.config import Config

    from mmvit.utils.config import check_mmvit_types, load_config
    if isinstance(config, Config):
        cfg = config.copy()
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        source = cfg.filename or 'config'
    else:
        cfg = load_config(config, overlays, cfg_options)
        source = config
    check_mmvit_types(cfg, source)
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

    from mmvit.utils.config import check_checkpoint_file
    if deploy not in (False, True):
        raise ValueError(f'init_inferencer: deploy={deploy!r}; allowed: '
                         'False, True')
    cfg = load_inference_config(config, overlays, cfg_options)
    source = config if isinstance(config, str) else 'config'
    scope = task_scope(cfg, source)
    if weights is not None:
        check_checkpoint_file(weights, '--weights')
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
    if weights is not None:
        from mmvit.engine.checkpoint import require_fit
        require_fit(inferencer.model, weights, use='run inference')
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


def list_images(path):
    """``path`` itself, or the images of the folder ``path`` (sorted)."""
    if osp.isdir(path):
        files = sorted(
            osp.join(path, f) for f in os.listdir(path)
            if f.lower().endswith(IMAGE_SUFFIXES))
        if not files:
            raise FileNotFoundError(
                f'folder {path!r} holds no images ({", ".join(IMAGE_SUFFIXES)})')
        return files
    if not osp.isfile(path):
        raise FileNotFoundError(f'input {path!r} is neither an image file '
                                'nor a folder')
    return [path]


def _to_json(value):
    import numpy as np
    import torch
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def infer_images(inferencer, inputs, out_dir, batch_size=1,
                 pred_score_thr=0.3, show=False):
    """Run ``inferencer`` on an image or a folder of images (with the
    Inferencer's progress bar) and write ``out_dir/vis/<name>`` (the drawn
    result) and ``out_dir/preds/<name>`` (boxes, scores, labels and masks
    as JSON for detection; the label map as PNG for segmentation; scores
    and class as JSON for classification).

    Returns:
        list[dict]: the Inferencer's predictions, one per image.
    """
    from mmengine.registry import DefaultScope
    files = list_images(inputs)
    scope = inferencer.mmvit_scope
    vis_dir, pred_dir = osp.join(out_dir, 'vis'), osp.join(out_dir, 'preds')
    os.makedirs(vis_dir, exist_ok=True)
    with DefaultScope.overwrite_default_scope(scope):
        if scope == 'mmdet':
            result = inferencer(
                files, batch_size=batch_size, out_dir=out_dir, show=show,
                pred_score_thr=pred_score_thr, no_save_pred=False)
            return result['predictions']
        if scope == 'mmseg':
            first = inferencer.num_pred_imgs
            result = inferencer(
                files, batch_size=batch_size, out_dir=out_dir, show=show,
                img_out_dir='vis', pred_out_dir='preds')
            # the library numbers its label maps; name them by image
            for i, path in enumerate(files):
                os.replace(
                    osp.join(pred_dir, f'{first + i:08d}_pred.png'),
                    osp.join(pred_dir,
                             osp.splitext(osp.basename(path))[0] + '.png'))
            predictions = result['predictions']
            return predictions if len(files) > 1 else [predictions]
        predictions = inferencer(files, batch_size=batch_size, show=show,
                                 show_dir=vis_dir)
    os.makedirs(pred_dir, exist_ok=True)
    for path, prediction in zip(files, predictions):
        name = osp.splitext(osp.basename(path))[0]
        with open(osp.join(pred_dir, name + '.json'), 'w') as f:
            json.dump({k: _to_json(v) for k, v in prediction.items()}, f)
    return predictions


def _draw(inferencer, frames, pred_score_thr):
    """The Inferencer's drawings of its predictions for ``frames`` (BGR
    arrays, drawn in their own channel order)."""
    scope = inferencer.mmvit_scope
    samples = inferencer(frames, batch_size=len(frames),
                         return_datasamples=True, **(
                             dict(pred_score_thr=pred_score_thr)
                             if scope == 'mmdet' else {}))
    if isinstance(samples, dict):
        samples = samples['predictions']
    if scope == 'mmdet':
        return inferencer.visualize(frames, samples, return_vis=True,
                                    no_save_vis=True,
                                    pred_score_thr=pred_score_thr)
    if scope == 'mmseg':
        return inferencer.visualize(frames, samples, return_vis=True)
    if inferencer.visualizer is None:
        from mmpretrain.visualization import UniversalVisualizer
        inferencer.visualizer = UniversalVisualizer()
    return [inferencer.visualizer.visualize_cls(
        frame, sample, classes=inferencer.classes, draw_gt=False,
        draw_pred=True) for frame, sample in zip(frames, samples)]


def infer_video(inferencer, video, out_file, pred_score_thr=0.3,
                batch_size=1):
    """Run ``inferencer`` on every frame of ``video`` and write the drawn
    frames to ``out_file`` (same size and frame rate; mp4v for ``.mp4``,
    XVID for ``.avi``). Returns the number of frames written."""
    import cv2
    import mmcv
    from mmengine.registry import DefaultScope
    from mmengine.utils import ProgressBar
    if not osp.isfile(video):
        raise FileNotFoundError(f'video {video!r} does not exist')
    reader = mmcv.VideoReader(video)
    if reader.frame_cnt == 0 or reader.width == 0:
        raise ValueError(f'video {video!r}: no frames could be read')
    codec = {'.avi': 'XVID'}.get(osp.splitext(out_file)[1].lower(), 'mp4v')
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    writer = cv2.VideoWriter(out_file, cv2.VideoWriter_fourcc(*codec),
                             reader.fps, (reader.width, reader.height))
    quiet = _quiet_progress(inferencer)
    written = 0
    progress = ProgressBar(reader.frame_cnt)
    try:
        with DefaultScope.overwrite_default_scope(inferencer.mmvit_scope):
            frames = []
            for frame in reader:
                frames.append(frame)
                if len(frames) == batch_size:
                    written += _write(writer, _draw(inferencer, frames,
                                                    pred_score_thr), reader)
                    progress.update(len(frames))
                    frames = []
            if frames:
                written += _write(writer, _draw(inferencer, frames,
                                                pred_score_thr), reader)
                progress.update(len(frames))
    finally:
        writer.release()
        quiet()
    return written


def _write(writer, drawings, reader):
    import cv2
    for image in drawings:
        if image.shape[:2] != (reader.height, reader.width):
            image = cv2.resize(image, (reader.width, reader.height))
        writer.write(image)
    return len(drawings)


def _quiet_progress(inferencer):
    """Silence the Inferencer's per-call progress bar; returns the undo."""
    if inferencer.mmvit_scope == 'mmpretrain':
        import mmpretrain.utils.progress as progress
        before = progress.disable_progress_bar
        progress.disable_progress_bar = True
        return lambda: setattr(progress, 'disable_progress_bar', before)
    before = getattr(inferencer, 'show_progress', True)
    inferencer.show_progress = False
    return lambda: setattr(inferencer, 'show_progress', before)
