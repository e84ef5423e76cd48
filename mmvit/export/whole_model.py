"""Whole detectors and segmentors as graphs, post-processing included.

:func:`end_to_end` wraps an mmdet detector (single-stage dense heads such as
RetinaNet; two-stage RPN + ``StandardRoIHead`` models such as Faster and
Mask R-CNN) or an mmseg ``EncoderDecoder`` in a module that computes, from
the normalised and padded image tensor, what the library's ``predict``
computes before its last, per-image steps:

* detectors: inputs ``input`` (1, 3, H, W), ``img_shape`` (2,) float
  ``(h, w)`` of the resized image inside the padding and ``scale_factor``
  (2,) float ``(w, h)`` of that resize; outputs ``dets`` (N, 5) boxes in
  the original image and scores, ``labels`` (N,) and, with a mask head,
  ``masks`` (N, 28, 28): each detection's mask probabilities in its box,
  which :class:`OnnxPredictor` pastes into the image with mmdet's own
  paste function;
* segmentors: input ``input`` (B, 3, H, W); output ``seg_logits``
  (B, C, H, W), resized to the input as the library does before cropping
  and resizing to the original image;
* classifiers: input ``input`` (B, 3, H, W); output ``scores`` (B,
  classes), the softmax of the logits.

The post-processing follows the library's code step by step (per-level
top-k, box decoding and clipping, class-aware NMS by the coordinate-offset
trick of mmcv's ``batched_nms``, RoI feature extraction by box size),
written with operations that trace into one graph for every input size:
top-k sizes computed from traced shapes, NMS as one op
(:class:`NonMaxSuppression`, ONNX ``NonMaxSuppression``), and each RoI
level computed for all boxes and selected by mask
(:class:`AllLevelsRoIExtractor`, swapped in by an export rule).
"""
import torch
import torch.nn.functional as F
from torch import nn

from .layers import export_rule, swap_class


# -- operations that trace into dynamic graphs --------------------------------
def topk_at_most(scores, k, dim=-1):
    """``scores.topk(min(k, size))`` along ``dim``; the minimum is taken on
    the traced size, so the graph serves inputs with fewer than ``k``."""
    size = scores.shape[dim]
    k = min(k, size) if isinstance(size, int) else torch.clamp(size, max=k)
    return scores.topk(k, dim)


class NonMaxSuppression(torch.autograd.Function):
    """Greedy NMS of one class: indices of the kept boxes, best first, at
    most ``max_out``; only boxes scoring above ``score_thr`` take part.
    Boxes are suppressed by a kept box overlapping them with IoU above
    ``iou_thr`` (as mmcv's and torchvision's ``nms``). Exports as ONNX
    ``NonMaxSuppression``."""

    @staticmethod
    def forward(ctx, boxes, scores, max_out, iou_thr, score_thr):
        from torchvision.ops import nms
        candidates = (scores > score_thr).nonzero().squeeze(1)
        keep = nms(boxes[candidates], scores[candidates], iou_thr)
        return candidates[keep[:max_out]]

    @staticmethod
    def symbolic(g, boxes, scores, max_out, iou_thr, score_thr):
        def const(value, dtype):
            return g.op('Constant', value_t=torch.tensor([value], dtype=dtype))

        zero = const(0, torch.long)
        selected = g.op(
            'NonMaxSuppression',
            g.op('Unsqueeze', boxes, zero),
            g.op('Unsqueeze', g.op('Unsqueeze', scores, zero), zero),
            const(max_out, torch.long), const(iou_thr, torch.float),
            const(score_thr, torch.float))
        return g.op('Gather', selected, g.op(
            'Constant', value_t=torch.tensor(2, dtype=torch.long)), axis_i=1)


def batched_nms(boxes, scores, groups, iou_thr, max_out, score_thr=0.0):
    """Indices kept by NMS within each group (class or level), best first:
    mmcv's ``batched_nms`` offset trick (each group's boxes moved apart by
    ``group * (largest coordinate + 1)``), then one NMS."""
    offsets = groups.to(boxes) * (boxes.max() + 1)
    return NonMaxSuppression.apply(boxes + offsets[:, None], scores,
                                   max_out, iou_thr, score_thr)


def decode(coder, priors, deltas, img_shape):
    """The coder's boxes of ``deltas`` on ``priors``, clipped to
    ``img_shape`` where the coder clips (``clip_border``)."""
    boxes = coder.decode(priors, deltas)
    return clip_boxes(boxes, img_shape) if getattr(
        coder, 'clip_border', True) else boxes


def clip_boxes(boxes, img_shape):
    """Boxes (N, 4) clipped to ``[0, w] x [0, h]`` of ``img_shape``
    (a (2,) tensor ``(h, w)``)."""
    zero = boxes.new_zeros(())
    x1, y1, x2, y2 = boxes.unbind(-1)
    height, width = img_shape[0], img_shape[1]
    return torch.stack([x1.clamp(min=zero).minimum(width),
                        y1.clamp(min=zero).minimum(height),
                        x2.clamp(min=zero).minimum(width),
                        y2.clamp(min=zero).minimum(height)], -1)


def rescale_boxes(boxes, scale_factor):
    """Boxes of the resized image in the original one (``scale_factor`` a
    (2,) tensor ``(w, h)``)."""
    return boxes / scale_factor.repeat(2)


def _flat(maps, channels):
    """(1, A*c, H, W) -> (H*W*A, c) in mmdet's anchor order."""
    return maps[0].permute(1, 2, 0).reshape(-1, channels)


# -- the RoI feature extractor --------------------------------------------------
try:
    from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
except ImportError:  # mmdet absent: nothing of it to export
    SingleRoIExtractor = None
else:
    class AllLevelsRoIExtractor(SingleRoIExtractor):
        """mmdet's ``SingleRoIExtractor`` (RoIAlign at the level its box
        size maps to) as a fixed graph: every level pools every box with
        torchvision's ``roi_align`` (mmcv's ``RoIAlign`` maths: average
        pooling, ``aligned`` half-pixel offsets, adaptive sampling) and a
        mask keeps each box's own level."""

        def forward(self, feats, rois, roi_scale_factor=None):
            from torchvision.ops import roi_align
            num_levels = len(feats)
            levels = self.map_roi_levels(rois, num_levels)
            if roi_scale_factor is not None:
                rois = self.roi_rescale(rois, roi_scale_factor)
            out = 0
            for i, layer in enumerate(self.roi_layers[:num_levels]):
                pooled = roi_align(feats[i], rois, layer.output_size,
                                   layer.spatial_scale, layer.sampling_ratio,
                                   layer.aligned)
                keep = (levels == i).to(pooled)[:, None, None, None]
                out = out + pooled * keep
            return out

    @export_rule(SingleRoIExtractor)
    def _roi_extractor(module):
        if any(layer.pool_mode != 'avg' for layer in module.roi_layers):
            raise NotImplementedError('only average RoIAlign exports')
        return swap_class(module, AllLevelsRoIExtractor)


try:
    from mmseg.models.utils import Upsample
except ImportError:  # mmseg absent
    Upsample = None
else:
    class TracedSizeUpsample(Upsample):
        """mmseg's ``Upsample`` (as in Semantic FPN's head) with its output
        size ``floor(size * scale_factor)`` computed on the traced input
        size, where the library's ``int()`` would fix it to the example's."""

        def forward(self, x):
            if self.size:
                return super().forward(x)
            factors = self.scale_factor if isinstance(
                self.scale_factor, tuple) else (self.scale_factor, ) * 2
            size = [int(t * f) if isinstance(t, int) else
                    (t * f).floor().to(torch.long)
                    for t, f in zip(x.shape[-2:], factors)]
            return F.interpolate(x, size, None, self.mode,
                                 self.align_corners)

    @export_rule(Upsample)
    def _upsample(module):
        return swap_class(module, TracedSizeUpsample)


# -- detectors ------------------------------------------------------------------
class DenseDetectorEnd2End(nn.Module):
    """A single-stage dense detector (RetinaNet, ...) with mmdet's
    ``predict_by_feat`` post-processing: per level the ``nms_pre`` best
    (anchor, class) scores, boxes decoded and clipped, then rescaled to the
    original image, boxes of ``min_bbox_size`` or less dropped,
    class-aware NMS, ``max_per_img`` kept."""

    def __init__(self, detector):
        super().__init__()
        self.detector = detector
        head = detector.bbox_head
        if not head.use_sigmoid_cls:
            raise NotImplementedError(
                f'{type(head).__name__}: softmax dense heads do not export')
        self.cfg = head.test_cfg

    def forward(self, inputs, img_shape, scale_factor):
        head, cfg = self.detector.bbox_head, self.cfg
        cls_scores, bbox_preds = self.detector._forward(inputs)[:2]
        priors = head.prior_generator.grid_priors(
            [c.shape[-2:] for c in cls_scores], dtype=inputs.dtype,
            device=inputs.device)
        classes, encode = head.cls_out_channels, head.bbox_coder.encode_size
        nms_pre = cfg.get('nms_pre', -1)
        nms_pre = nms_pre if nms_pre > 0 else 2**62  # <= 0: every score
        boxes, scores, labels = [], [], []
        for cls_score, bbox_pred, prior in zip(cls_scores, bbox_preds,
                                               priors):
            score = _flat(cls_score, classes).sigmoid().reshape(-1)
            score, index = topk_at_most(score, nms_pre)
            anchor = index // classes
            boxes.append(decode(head.bbox_coder, prior[anchor],
                                _flat(bbox_pred, encode)[anchor], img_shape))
            scores.append(score)
            labels.append(index % classes)
        boxes = rescale_boxes(torch.cat(boxes), scale_factor)
        scores, labels = torch.cat(scores), torch.cat(labels)
        # boxes too small and scores at the threshold never take part
        threshold = cfg.get('score_thr', 0.0)
        scores = torch.where(_large_enough(boxes, cfg), scores,
                             scores.new_full((), -1.0))
        keep = batched_nms(boxes, scores, labels, cfg.nms.iou_threshold,
                           cfg.max_per_img, threshold)
        dets = torch.cat([boxes[keep], scores[keep, None]], -1)
        return dets, labels[keep]


def _large_enough(boxes, cfg):
    """mmdet's ``min_bbox_size`` filter: width and height above it (no
    filter when it is negative)."""
    size = cfg.get('min_bbox_size', -1)
    if size < 0:
        return torch.ones_like(boxes[:, 0], dtype=torch.bool)
    return ((boxes[:, 2] - boxes[:, 0]) > size) & \
        ((boxes[:, 3] - boxes[:, 1]) > size)


class TwoStageEnd2End(nn.Module):
    """RPN + ``StandardRoIHead`` (Faster / Mask R-CNN) with mmdet's
    post-processing: per level the ``nms_pre`` best anchors, proposals NMSed
    within each level, the best ``max_per_img`` of them; per (proposal,
    class) a softmax score and a decoded, clipped box, class-aware NMS above
    ``score_thr``; masks of the detected boxes, of their class."""

    def __init__(self, detector):
        super().__init__()
        self.detector = detector
        roi_head = detector.roi_head
        if roi_head.with_shared_head or not roi_head.with_bbox:
            raise NotImplementedError('RoI heads with a shared head do not '
                                      'export')
        if roi_head.bbox_head.reg_class_agnostic or \
                getattr(roi_head.bbox_head, 'custom_cls_channels', False):
            raise NotImplementedError('class-agnostic or custom-activation '
                                      'box heads do not export')

    def proposals(self, feats, img_shape):
        rpn = self.detector.rpn_head
        cfg = self.detector.test_cfg.rpn
        cls_scores, bbox_preds = rpn(feats)
        priors = rpn.prior_generator.grid_priors(
            [c.shape[-2:] for c in cls_scores], dtype=feats[0].dtype,
            device=feats[0].device)
        boxes, scores, levels = [], [], []
        for level, (cls_score, bbox_pred, prior) in enumerate(zip(
                cls_scores, bbox_preds, priors)):
            score = _flat(cls_score, 1).reshape(-1).sigmoid()
            score, index = topk_at_most(score, cfg.nms_pre) \
                if cfg.nms_pre > 0 else (score, None)
            deltas = _flat(bbox_pred, rpn.bbox_coder.encode_size)
            if index is not None:
                prior, deltas = prior[index], deltas[index]
            boxes.append(decode(rpn.bbox_coder, prior, deltas, img_shape))
            scores.append(score)
            levels.append(torch.full_like(score, level, dtype=torch.long))
        boxes = torch.cat(boxes)
        scores = torch.cat(scores)
        scores = torch.where(_large_enough(boxes, cfg), scores,
                             scores.new_full((), -1.0))
        keep = batched_nms(boxes, scores, torch.cat(levels),
                           cfg.nms.iou_threshold, cfg.max_per_img, -0.5)
        return boxes[keep]

    def forward(self, inputs, img_shape, scale_factor):
        detector = self.detector
        roi_head, cfg = detector.roi_head, detector.test_cfg.rcnn
        feats = detector.extract_feat(inputs)
        proposals = self.proposals(feats, img_shape)
        rois = F.pad(proposals, (1, 0))  # image index 0
        bbox_head = roi_head.bbox_head
        extractor = roi_head.bbox_roi_extractor
        cls_score, bbox_pred = bbox_head(
            extractor(feats[:extractor.num_inputs], rois))
        classes = bbox_head.num_classes
        scores = F.softmax(cls_score, -1)[:, :classes]
        # (proposal, class) pairs, proposal-major as in mmdet
        labels = (torch.zeros_like(scores, dtype=torch.long) +
                  torch.arange(classes, device=scores.device)).reshape(-1)
        scores = scores.reshape(-1)
        boxes = decode(
            bbox_head.bbox_coder,
            proposals[:, None].expand(-1, classes, -1).reshape(-1, 4),
            bbox_pred.reshape(-1, bbox_head.bbox_coder.encode_size),
            img_shape)
        if not roi_head.with_mask:
            boxes = rescale_boxes(boxes, scale_factor)
        keep = batched_nms(boxes, scores, labels, cfg.nms.iou_threshold,
                           cfg.max_per_img, cfg.score_thr)
        boxes, labels = boxes[keep], labels[keep]
        if not roi_head.with_mask:
            return torch.cat([boxes, scores[keep, None]], -1), labels
        mask_rois = F.pad(boxes, (1, 0))
        extractor = roi_head.mask_roi_extractor
        mask_preds = roi_head.mask_head(
            extractor(feats[:extractor.num_inputs], mask_rois))
        size = mask_preds.shape[-2:]
        masks = mask_preds.gather(1, labels[:, None, None, None].expand(
            -1, 1, size[0], size[1]))[:, 0].sigmoid()
        dets = torch.cat([rescale_boxes(boxes, scale_factor),
                          scores[keep, None]], -1)
        return dets, labels, masks


class SegmentorEnd2End(nn.Module):
    """An mmseg ``EncoderDecoder``: the decode head's logits resized
    (bilinear) to the input, as ``encode_decode`` does."""

    def __init__(self, segmentor):
        super().__init__()
        self.segmentor = segmentor
        mode = (segmentor.test_cfg or {}).get('mode', 'whole')
        if mode != 'whole':
            raise NotImplementedError(
                f'test_cfg.mode={mode!r}: only whole-image inference '
                "(mode='whole') exports")

    def forward(self, inputs):
        segmentor = self.segmentor
        logits = segmentor.decode_head(segmentor.extract_feat(inputs))
        return F.interpolate(logits, size=inputs.shape[2:], mode='bilinear',
                             align_corners=segmentor.decode_head.align_corners)


class ClassifierEnd2End(nn.Module):
    """An mmpretrain ``ImageClassifier``: the softmax scores of its head's
    logits, as its ``predict`` computes them."""

    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, inputs):
        return F.softmax(self.classifier(inputs, mode='tensor'), dim=1)


def end_to_end(model):
    """The end-to-end module of ``model`` (see the module docstring), with
    its input and output names; ``NotImplementedError`` for other
    models."""
    names = [cls.__name__ for cls in type(model).__mro__]
    if 'ImageClassifier' in names:
        return ClassifierEnd2End(model), ['input'], ['scores']
    if 'EncoderDecoder' in names:
        return SegmentorEnd2End(model), ['input'], ['seg_logits']
    if 'TwoStageDetector' in names:
        outputs = ['dets', 'labels'] + (['masks'] if model.roi_head.with_mask
                                        else [])
        return TwoStageEnd2End(model), DETECTOR_INPUTS, outputs
    if 'SingleStageDetector' in names:
        return DenseDetectorEnd2End(model), DETECTOR_INPUTS, ['dets',
                                                               'labels']
    raise NotImplementedError(
        f'{type(model).__name__}: whole-model export covers mmdet '
        'single-stage and two-stage detectors, mmseg EncoderDecoder '
        'segmentors and mmpretrain ImageClassifier classifiers')


DETECTOR_INPUTS = ['input', 'img_shape', 'scale_factor']
