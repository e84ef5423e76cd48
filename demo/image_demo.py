#!/usr/bin/env python
"""Run a detector, segmentor or classifier on an image or a folder of images.

    python demo/image_demo.py demo.jpg configs/cas_vit/retinanet_cas_vit_s.py \\
        --weights work_dirs/retinanet_cas_vit_s/epoch_12.pth --out-dir outputs

The config's ``default_scope`` picks the library's Inferencer (mmdet's
DetInferencer, mmseg's MMSegInferencer, mmpretrain's
ImageClassificationInferencer); the config a training run dumps into its
work dir works as well. Drawn results go to ``OUT_DIR/vis/``, predictions to
``OUT_DIR/preds/`` (the Inferencer: mmvit.apis.inference).
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def add_common_args(parser):
    """The arguments image_demo.py and video_demo.py share."""
    parser.add_argument('model', help='config file (an mmvit config or the '
                        'config dumped in a training work dir)')
    parser.add_argument('--weights', help='checkpoint file; without it the '
                        'model keeps its random initialisation')
    parser.add_argument('--device', default=None,
                        help='device, e.g. cpu or cuda:0 (default: cuda:0 '
                        'when available, else cpu)')
    parser.add_argument('--pred-score-thr', type=float, default=0.3,
                        help='detection: draw boxes scoring at least this')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--deploy', action='store_true',
                        help='fold norms and merge layers after loading '
                        '(mmvit.deploy.switch_to_deploy)')
    parser.add_argument('--onnx', metavar='FILE',
                        help='predict with this whole-model graph of '
                        'tools/deployment/pytorch2onnx.py in onnxruntime '
                        '(CPU; detection and segmentation)')
    parser.add_argument('--overlay', action='append', default=[],
                        metavar='FILE', help='a config file merged over the '
                        'config (repeatable)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value')


def init_from_args(parser, argv):
    """Parse ``argv`` and build the Inferencer it asks for:
    (args, inferencer)."""
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f'--batch-size {args.batch_size}: must be >= 1')
    import mmvit  # noqa: F401
    from mmvit.apis.inference import init_inferencer
    return args, init_inferencer(args.model, args.weights, args.device,
                                 args.deploy, args.overlay, args.cfg_options,
                                 onnx=args.onnx)


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('inputs', help='an image file or a folder of images')
    add_common_args(parser)
    parser.add_argument('--out-dir', default='outputs',
                        help='folder for vis/ (drawn) and preds/ (results)')
    parser.add_argument('--show', action='store_true',
                        help='also show each result in a window')
    args, inferencer = init_from_args(parser, argv)
    predictions = infer_images(inferencer, args.inputs, args.out_dir,
                               args.batch_size, args.pred_score_thr,
                               args.show)
    print(f'{len(predictions)} image(s): drawn results in '
          f'{osp.join(args.out_dir, "vis")}, predictions in '
          f'{osp.join(args.out_dir, "preds")}')
    return predictions


if __name__ == '__main__':
    main()
