#!/usr/bin/env python
"""Run a detector, segmentor or classifier on every frame of a video.

    python demo/video_demo.py demo.mp4 configs/cas_vit/retinanet_cas_vit_s.py \\
        --weights work_dirs/retinanet_cas_vit_s/epoch_12.pth --out out.mp4

Writes the drawn frames to ``--out`` with the input's size and frame rate
(the arguments are image_demo.py's).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from image_demo import add_common_args, init_from_args  # noqa: E402


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
    if not reader.opened or reader.frame_cnt <= 0 or reader.width <= 0:
        raise ValueError(f'video {video!r} cannot be read as a video (OpenCV '
                         'finds no frames: not a video, or a codec it lacks)')
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
    if written == 0:
        if osp.isfile(out_file):
            os.remove(out_file)
        raise ValueError(f'video {video!r}: no frame could be decoded, so '
                         f'nothing was written to {out_file!r}')
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('video', help='a video file')
    add_common_args(parser)
    parser.add_argument('--out', required=True,
                        help='output video file (.mp4 or .avi)')
    args, inferencer = init_from_args(parser, argv)
    frames = infer_video(inferencer, args.video, args.out,
                         args.pred_score_thr, args.batch_size)
    print(f'{frames} frames written to {args.out}')
    return frames


if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f'video_demo.py: {error}')
