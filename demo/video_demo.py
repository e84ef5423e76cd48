#!/usr/bin/env python
"""Run a detector, segmentor or classifier on every frame of a video.

    python demo/video_demo.py demo.mp4 configs/retinanet_cas_vit_s.py \\
        --weights work_dirs/retinanet_cas_vit_s/epoch_12.pth --out out.mp4

Writes the drawn frames to ``--out`` with the input's size and frame rate
(library: mmvit.apis.inference; the arguments are image_demo.py's).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from image_demo import add_common_args, init_from_args  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('video', help='a video file')
    add_common_args(parser)
    parser.add_argument('--out', required=True,
                        help='output video file (.mp4 or .avi)')
    args, inferencer = init_from_args(parser, argv)
    from mmvit.apis.inference import infer_video
    frames = infer_video(inferencer, args.video, args.out,
                         args.pred_score_thr, args.batch_size)
    print(f'{frames} frames written to {args.out}')
    return frames


if __name__ == '__main__':
    main()
