"""mmdet's test-time augmentation of detectors, extended to instance masks."""
import torch
from mmcv.ops import batched_nms
from mmdet.models.test_time_augs import DetTTAModel
from mmengine.structures import InstanceData

from mmvit.registry import MODELS


def unflip_masks(masks, direction):
    """Masks (N, H, W) of a flipped view in the original orientation."""
    dims = {'horizontal': (-1, ), 'vertical': (-2, ),
            'diagonal': (-2, -1)}.get(direction)
    if dims is None:
        raise ValueError(f'flip direction {direction!r}: allowed '
                         'horizontal, vertical, diagonal')
    return masks.flip(dims)


@MODELS.register_module()
class MaskDetTTAModel(DetTTAModel):
    """mmdet's ``DetTTAModel`` that also merges instance masks (Mask R-CNN).

    Every view's boxes are mapped back to the original image (flips undone,
    as in the base class) and pooled, and so are its masks, which the
    detector already predicts at the original size: one class-aware NMS
    (``tta_cfg.nms``) over the pooled boxes then keeps the top
    ``tta_cfg.max_per_img`` detections with their own masks. Without
    masks it merges like the base class.

    Args:
        tta_cfg (dict): ``nms`` (mmcv's NMS config) and ``max_per_img``.
    """

    def _merge_single_sample(self, data_samples):
        if data_samples[0].pred_instances.get('masks', None) is None:
            return super()._merge_single_sample(data_samples)
        preds = [s.pred_instances for s in data_samples]
        metas = [s.metainfo for s in data_samples]
        bboxes, scores = self.merge_aug_bboxes(
            [p.bboxes for p in preds], [p.scores for p in preds], metas)
        labels = torch.cat([p.labels for p in preds])
        masks = torch.cat([
            unflip_masks(p.masks, meta['flip_direction'])
            if meta.get('flip') else p.masks
            for p, meta in zip(preds, metas)])
        merged = data_samples[0]
        if bboxes.numel() == 0:
            return merged
        dets, keep = batched_nms(bboxes, scores, labels, self.tta_cfg.nms)
        keep = keep[:self.tta_cfg.max_per_img]
        results = InstanceData()
        results.bboxes = dets[:len(keep), :-1]
        results.scores = dets[:len(keep), -1]
        results.labels = labels[keep]
        results.masks = masks[keep]
        merged.pred_instances = results
        return merged
