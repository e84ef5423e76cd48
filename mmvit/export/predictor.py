"""Predictions of an exported whole model in onnxruntime, as the library's
``predict`` gives them, and their comparison with PyTorch's.

:class:`OnnxPredictor` runs the config's test pipeline and data
preprocessor (the libraries' own), the graph of
:func:`mmvit.export.whole_model.end_to_end`, then the per-image steps the
graph leaves out: mmdet's mask pasting (``_do_paste_mask`` and the
config's ``mask_thr_binary``) and mmseg's resize of the logits to the
original image and arg-max. It returns mmdet's ``DetDataSample`` /
mmseg's ``SegDataSample``, like the PyTorch model's ``test_step``.
"""
import copy
import importlib

import numpy as np
import torch
from mmengine.model import BaseModel

from mmvit.registry import MODELS


def onnx_session(path, threads=None):
    """An onnxruntime CPU session with ``threads`` intra-op threads whose
    idle threads do not spin."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    return ort.InferenceSession(str(path), options,
                                providers=['CPUExecutionProvider'])


#: the libraries whose whole models export (detection, segmentation,
#: classification)
SCOPES = ('mmdet', 'mmseg', 'mmpretrain')


@MODELS.register_module()
class OnnxPredictor(BaseModel):
    """The whole model of ``cfg`` exported to ``onnx_file``, run in
    onnxruntime: an mmengine model whose ``test_step`` gives the data
    samples the PyTorch model gives, so ``tools/test.py --backend
    onnxruntime`` evaluates it with the config's own loop and metrics.

    Args:
        cfg (Config | dict): the model's config (its ``default_scope``,
            test pipeline, data preprocessor and ``test_cfg``).
        onnx_file (str): the graph written by ``tools/deployment/
            pytorch2onnx.py CONFIG``.
        threads (int, optional): onnxruntime's intra-op threads.
        data_preprocessor (dict, optional): instead of the config's (what
            mmengine's runner hands a model built from a config).
    """

    def __init__(self, cfg, onnx_file, threads=None,
                 data_preprocessor=None):
        from mmengine.registry import DefaultScope
        cfg = self.config_subset(cfg, data_preprocessor)
        self.scope = cfg.get('default_scope', 'mmdet')
        if self.scope not in SCOPES:
            raise ValueError(f'default_scope={self.scope!r}: whole-model '
                             f'graphs exist for {", ".join(SCOPES)} models')
        importlib.import_module(f'{self.scope}.models')
        with DefaultScope.overwrite_default_scope(self.scope):
            super().__init__(data_preprocessor=copy.deepcopy(
                cfg['model']['data_preprocessor']))
        self.cfg = cfg
        self.test_cfg = cfg['model'].get('test_cfg') or {}
        decode_head = cfg['model'].get('decode_head') or {}
        self.align_corners = decode_head.get('align_corners', False)
        self.session = onnx_session(onnx_file, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self._pipeline = None

    @classmethod
    def model_config(cls, cfg, onnx_file):
        """The ``model`` of ``cfg`` replaced by the predictor of
        ``onnx_file`` (what ``tools/test.py --backend onnxruntime`` runs
        the config's test loop with)."""
        return dict(type='mmvit.OnnxPredictor',
                    cfg=cls.config_subset(cfg), onnx_file=onnx_file)

    @staticmethod
    def config_subset(cfg, data_preprocessor=None):
        """The parts of ``cfg`` the predictor reads, as a plain dict
        (``data_preprocessor``, where given, instead of the config's)."""
        model = cfg['model']
        # mmpretrain configs may keep it at the top level (the runner
        # hands it to the model) and default its type
        preprocessor = dict(data_preprocessor or
                            model.get('data_preprocessor') or
                            cfg.get('data_preprocessor') or {})
        if cfg.get('default_scope') == 'mmpretrain':
            preprocessor.setdefault('type', 'ClsDataPreprocessor')
        keep = dict(data_preprocessor=preprocessor,
                    test_cfg=model.get('test_cfg'))
        if 'decode_head' in model:
            keep['decode_head'] = dict(
                align_corners=model['decode_head'].get('align_corners',
                                                       False))
        pipeline = cfg['test_dataloader']['dataset']['pipeline']
        return copy.deepcopy(dict(
            default_scope=cfg.get('default_scope', 'mmdet'), model=keep,
            test_dataloader=dict(dataset=dict(pipeline=pipeline))))

    def preprocess(self, image):
        """(inputs, data_samples) of one image file, as the model's
        ``test_step`` receives them after its data preprocessor."""
        if self._pipeline is None:
            from mmcv.transforms import Compose
            from mmengine.registry import DefaultScope
            steps = [t for t in self.cfg['test_dataloader']['dataset'][
                'pipeline'] if 'LoadAnnotations' not in t['type']]
            with DefaultScope.overwrite_default_scope(self.scope):
                self._pipeline = Compose(copy.deepcopy(steps))
        data = self._pipeline(dict(img_path=image, img_id=0))
        data = self.data_preprocessor(dict(inputs=[data['inputs']],
                                           data_samples=[data['data_samples']]),
                                      False)
        return data['inputs'], data['data_samples']

    def feeds(self, inputs, sample):
        """The graph's inputs for one preprocessed image (1, 3, H, W)."""
        meta = sample.metainfo
        values = dict(
            input=inputs.cpu().numpy(),
            img_shape=np.array(meta.get('img_shape', inputs.shape[2:])[:2],
                               dtype=np.float32),
            scale_factor=np.array(meta.get('scale_factor', (1.0, 1.0)),
                                  dtype=np.float32))
        return {name: values[name] for name in self.input_names}

    def run(self, inputs, data_samples):
        """Data samples with predictions for a preprocessed batch (one
        graph run per image)."""
        out = []
        for i, sample in enumerate(data_samples):
            outputs = self.session.run(None, self.feeds(inputs[i:i + 1],
                                                        sample))
            if self.scope == 'mmdet':
                out.append(self._detections(outputs, sample))
            elif self.scope == 'mmseg':
                out += self._segmentations(torch.from_numpy(outputs[0]),
                                           [sample])
            else:
                score = torch.from_numpy(outputs[0])[0]
                out.append(sample.set_pred_score(score).set_pred_label(
                    score.argmax(0, keepdim=True)))
        return out

    def forward(self, inputs, data_samples=None, mode='predict'):
        if mode != 'predict':
            raise RuntimeError(f'{type(self).__name__} only predicts '
                               f"(mode='predict'), got mode={mode!r}")
        return self.run(inputs, data_samples)

    def __call__(self, *args, **kwargs):
        """On an image file: the data sample with its predictions; else
        the module call (``forward``)."""
        if len(args) == 1 and isinstance(args[0], str) and not kwargs:
            return self.run(*self.preprocess(args[0]))[0]
        return super().__call__(*args, **kwargs)

    def _detections(self, outputs, sample):
        from mmdet.models.roi_heads.mask_heads.fcn_mask_head import \
            _do_paste_mask
        from mmengine.structures import InstanceData
        dets, labels = (torch.from_numpy(o) for o in outputs[:2])
        results = InstanceData()
        results.bboxes = dets[:, :4]
        results.scores = dets[:, 4]
        results.labels = labels
        if len(outputs) > 2:
            height, width = sample.metainfo['ori_shape'][:2]
            masks = torch.from_numpy(outputs[2])
            threshold = self.test_cfg['rcnn']['mask_thr_binary']
            pasted = torch.zeros(len(masks), height, width, dtype=torch.bool)
            for i in range(len(masks)):  # as mmdet on CPU: box by box
                chunk, where = _do_paste_mask(masks[i:i + 1, None],
                                              results.bboxes[i:i + 1],
                                              height, width, skip_empty=True)
                pasted[(torch.tensor([i]), ) + where] = chunk >= threshold
            results.masks = pasted
        sample.pred_instances = results
        return sample

    def _segmentations(self, logits, samples):
        from mmengine.structures import PixelData
        import torch.nn.functional as F
        for logit, sample in zip(logits, samples):
            height, width = sample.metainfo['ori_shape'][:2]
            logit = F.interpolate(logit[None], size=(height, width),
                                  mode='bilinear',
                                  align_corners=self.align_corners)[0]
            sample.seg_logits = PixelData(data=logit)
            sample.pred_sem_seg = PixelData(data=logit.argmax(0,
                                                              keepdim=True))
        return samples


def _match_near_ties(a, b, score_tol=1e-4):
    """An order of ``b`` (sorted by descending score, as ``a``) pairing
    each detection of ``a`` with the unpaired one of ``b`` of the same
    label whose box is nearest, among those whose score is within
    ``score_tol`` of it: detections whose scores differ by float rounding
    may swap ranks between two runtimes. Detections left without such a
    partner are paired in rank order with the rest."""
    import torch
    order = [None] * len(a)
    free = torch.ones(len(b), dtype=torch.bool)
    close = (a.scores[:, None] - b.scores[None, :]).abs() <= score_tol
    close &= a.labels[:, None] == b.labels[None, :]
    box_diff = (a.bboxes[:, None] - b.bboxes[None, :]).abs().amax(-1)
    for i in range(len(a)):
        candidates = (close[i] & free).nonzero().flatten()
        if len(candidates):
            order[i] = int(candidates[box_diff[i, candidates].argmin()])
            free[order[i]] = False
    rest = iter(free.nonzero().flatten().tolist())
    return [next(rest) if j is None else j for j in order]


def compare(reference, other):
    """How far ``other``'s predictions are from ``reference``'s (two data
    samples of the same image).

    Returns:
        dict: classification: ``labels_equal``, ``max_score_diff``;
        detection: ``count`` (both numbers of detections),
        ``labels_equal``, ``max_box_diff`` (pixels), ``max_score_diff`` and,
        with masks, ``mask_pixels_differing`` (fraction over all masks),
        after sorting both by descending score (near ties paired by
        their boxes, :func:`_match_near_ties`); segmentation:
        ``label_pixels_differing`` (fraction of the label map) and
        ``max_logit_diff``.
    """
    if 'pred_score' in reference:
        return dict(labels_equal=bool(torch.equal(reference.pred_label,
                                                  other.pred_label)),
                    max_score_diff=float((reference.pred_score -
                                          other.pred_score).abs().max()))
    if 'pred_sem_seg' in reference:
        a = reference.pred_sem_seg.data
        b = other.pred_sem_seg.data
        result = dict(label_pixels_differing=float((a != b).float().mean()))
        if 'seg_logits' in reference and 'seg_logits' in other:
            result['max_logit_diff'] = float(
                (reference.seg_logits.data - other.seg_logits.data).abs()
                .max())
        return result
    a, b = reference.pred_instances, other.pred_instances
    result = dict(count=(len(a), len(b)))
    if len(a) != len(b) or len(a) == 0:
        result['labels_equal'] = len(a) == len(b)
        return result
    a = a[a.scores.argsort(descending=True, stable=True)]
    b = b[b.scores.argsort(descending=True, stable=True)]
    b = b[_match_near_ties(a, b)]
    result.update(
        labels_equal=bool((a.labels == b.labels).all()),
        max_box_diff=float((a.bboxes - b.bboxes).abs().max()),
        max_score_diff=float((a.scores - b.scores).abs().max()))
    if 'masks' in a and 'masks' in b:
        result['mask_pixels_differing'] = float(
            (a.masks.bool() != b.masks.bool()).float().mean())
    return result
