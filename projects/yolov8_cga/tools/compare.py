#!/usr/bin/env python
"""Train plain YOLOv8 and YOLOv8 with cascaded group attention on the same
built-in COCO-layout data and schedule, and print COCO box AP (untrained
and trained) as a Markdown table.

    python tools/make_toy_data.py --task coco --out data/toy_coco
    python projects/yolov8_cga/tools/compare.py --models yolov8n yolov8n-cga
"""
import argparse
import json
import os.path as osp
import sys

# the project's package, and mmvit of this checkout
PROJECT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path[:0] = [PROJECT, osp.dirname(osp.dirname(PROJECT))]


def parse_args(argv=None):
    from yolov8_cga import CGA_MODELS, PLAIN_MODELS
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', nargs='+',
                        default=['yolov8n', 'yolov8n-cga'],
                        choices=PLAIN_MODELS + CGA_MODELS)
    parser.add_argument('--data-root', default='data/toy_coco',
                        help='COCO-layout set (tools/make_toy_data.py)')
    parser.add_argument('--work-dir', default='work_dirs/yolo_cga')
    parser.add_argument('--epochs', type=int, default=30)
    parser.add_argument('--imgsz', type=int, default=128)
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out', help='also write the rows as JSON here')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from yolov8_cga.compare import train_and_evaluate
    rows = train_and_evaluate(args.models, args.data_root, args.work_dir,
                              args.epochs, args.imgsz, args.batch,
                              args.seed, device=args.device)
    print(f'\n{args.epochs} epochs at {args.imgsz}x{args.imgsz}, batch '
          f'{args.batch}, seed {args.seed}, on {args.data_root}\n')
    print('| model | params (M) | box AP untrained | box AP | AP50 |')
    print('|---|---|---|---|---|')
    for r in rows:
        print(f"| {r['model']} | {r['params'] / 1e6:.2f} | "
              f"{100 * r['untrained']['bbox_mAP']:.1f} | "
              f"{100 * r['trained']['bbox_mAP']:.1f} | "
              f"{100 * r['trained']['bbox_mAP_50']:.1f} |")
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(rows, f, indent=1)


if __name__ == '__main__':
    main()
