"""Whole detectors and segmentors of every backbone next to the libraries'
ResNet-50 versions of the same heads: latency and GFLOPs (the library
behind ``tools/analysis/model_zoo.py --whole-models``).

Each cell is one model of ``configs/<head>_<family>_<variant>.py`` (or
mmdet's / mmseg's R-50 config of the head), its tensor forward without
post-processing (:class:`~mmvit.analysis.benchmark.TensorForward`) on a
random input of the head's size, eval mode, batch 1: the median CPU
milliseconds and the multiply-adds counted by mmengine.analysis (RoIAlign
and NMS count 0). The models of one row are timed interleaved.
"""
import gc
import os.path as osp
import sys
import traceback

from mmvit.families import families as family_table
from . import benchmark as bench

START = '<!-- whole-models:start -->'
END = '<!-- whole-models:end -->'

#: head -> (title, input (H, W), the library's ResNet-50 config)
HEADS = {
    'retinanet': ('RetinaNet', (800, 1344),
                  ('mmdet', 'retinanet/retinanet_r50_fpn_1x_coco.py')),
    'mask_rcnn': ('Mask R-CNN', (800, 1344),
                  ('mmdet', 'mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')),
    'semantic_fpn': ('Semantic FPN', (512, 512),
                     ('mmseg', 'sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py')),
    'upernet': ('UperNet', (512, 512),
                ('mmseg', 'upernet/upernet_r50_4xb4-160k_ade20k-512x512.py')),
}


def library_config(package, path):
    """The file of ``package``'s installed config ``path``."""
    import importlib
    root = osp.dirname(importlib.import_module(package).__file__)
    return osp.join(root, '.mim', 'configs', path)


def rows_to_measure(chosen, configs_dir):
    """[(row name, {head: config path})]: the ResNet-50 row, then each
    (family, variant) of ``chosen`` with its configs that exist."""
    rows = [('ResNet-50 (mmdet / mmseg)',
             {head: library_config(*spec[2]) for head, spec in
              HEADS.items()})]
    for family, variant in chosen:
        paths = {head: osp.join(configs_dir, f'{head}_{family}_{variant}.py')
                 for head in HEADS}
        rows.append((f'{family_table()[family].name} {variant}',
                     {h: p for h, p in paths.items() if osp.isfile(p)}))
    return rows


def measure_row(paths, opts):
    """{head: (milliseconds (median, min, max), GFLOPs)} of one row; a
    model that fails gets its exception instead."""
    cells = {}
    for head, path in paths.items():
        size = HEADS[head][1]
        try:
            model = bench.prepare(bench.build_config_model(path), opts)
            flops, _ = bench.count_flops(model, size)
            result = bench.measure({head: model}, [size], opts)[head]
            cells[head] = (result['ms'][size], flops / 1e9)
        except Exception as error:  # noqa: BLE001  (one cell, not the run)
            print(f'{path} failed:', file=sys.stderr)
            traceback.print_exc()
            cells[head] = error
        finally:
            model = None
            gc.collect()
    return cells


def render(measured, threads, repeat, warmup, device, tuned):
    """The markdown table (one row per backbone, one column per head:
    ``ms (x R-50) / GFLOPs``) and its notes."""
    header = ['backbone'] + [
        f'{title} @{bench.size_label(size)}: CPU ms / GFLOPs'
        for title, size, _ in HEADS.values()]
    base = measured[0][1]
    rows, notes = [], []
    for name, cells in measured:
        row = [name]
        for head in HEADS:
            cell = cells.get(head)
            if cell is None:
                row.append('—')
            elif isinstance(cell, Exception):
                notes.append(f'{name}, {HEADS[head][0]}: '
                             f'{type(cell).__name__}: '
                             f'{str(cell).splitlines()[0][:200]}')
                row.append(f'error [{len(notes)}]')
            else:
                (median, _, _), gflops = cell
                ratio = ''
                if cells is not base and not isinstance(base.get(head),
                                                        Exception):
                    ratio = f' ({median / base[head][0][0]:.2f}x)'
                row.append(f'{median:.0f}{ratio} / {gflops:.0f}')
        rows.append(row)
    lines = [
        bench.markdown_table(header, rows), '',
        'Measured by `tools/analysis/model_zoo.py --whole-models`: '
        f'{bench.machine_description(device, threads)}; batch 1, '
        f'{threads} threads, float32, eval, median of {repeat} after '
        f'{warmup} warm-up, glibc malloc {"tuned" if tuned else "default"}. '
        'Each model is its config (`configs/<head>_<family>_<variant>.py`; '
        'first row: mmdet\'s `retinanet_r50_fpn_1x_coco.py` and '
        '`mask-rcnn_r50_fpn_1x_coco.py`, mmseg\'s `fpn_r50_4xb4-160k_'
        'ade20k-512x512.py` and `upernet_r50_4xb4-160k_ade20k-512x512.py`), '
        'its tensor forward without post-processing on a random input: '
        '800x1344 for the detectors (a 1333x800 image padded to a multiple '
        'of 32), 512x512 for the segmentors. In brackets: the latency '
        'relative to the ResNet-50 model of the same head. Mask R-CNN with '
        'the proposals of its random weights (1000), RoIAlign and NMS '
        'counted as 0 FLOPs.']
    if notes:
        lines += [''] + [f'[{i}] {n}'.replace('|', '/')
                         for i, n in enumerate(notes, 1)]
    return '\n'.join(lines) + '\n'


def run(args, chosen, opts, tuned):
    """Measure the rows of ``chosen`` variants, print the markdown and
    write it where ``args`` says (``--out``; ``--readme`` between this
    module's markers); returns the markdown."""
    import time

    from .model_zoo import write_markdown
    measured = []
    began = time.perf_counter()
    rows = rows_to_measure(chosen, args.configs_dir)
    for i, (name, paths) in enumerate(rows, 1):
        print(f'[{i}/{len(rows)}] {name} (at '
              f'{time.perf_counter() - began:.0f} s)', flush=True)
        measured.append((name, measure_row(paths, opts)))
    markdown = render(measured, args.threads, args.repeat, args.warmup,
                      opts.device, tuned)
    print('\n' + markdown, flush=True)
    write_markdown(markdown, args.out, args.readme, START, END)
    return markdown
