#!/usr/bin/env python
"""The model zoo table: every backbone variant, measured and as published.

    python tools/analysis/model_zoo.py --threads 2 --repeat 3 \\
        --out work_dirs/model_zoo.md --plot work_dirs/model_zoo.png \\
        [--readme docs/model_zoo.md]

For each variant of CAS-ViT, CMT, EfficientViT and Castling-ViT (17; see
``--families`` and ``--variants`` to restrict): the backbone's parameters
and GFLOPs at 224x224, its CPU eval latency at 224x224 and 800x1216 (H x W;
batch 1, ``--threads`` threads, median and range of ``--repeat`` runs after
``--warmup``, the two sizes alternating), the parameters and GFLOPs of the
RetinaNet and Mask R-CNN detectors of ``configs/`` at 800x1280 (H x W: the
papers' 1280x800 image; whole detector, tensor forward without
post-processing), and the ImageNet / COCO / ADE20K numbers the papers (or
official model zoos) report, in columns marked "paper". It uses the
functions of ``mmvit.utils.benchmark`` (tools/analysis/benchmark.py says what is
measured and how). A model that fails gets an error mark in its row and a
note; the run goes on.

``--out`` writes the markdown (table and notes); ``--readme FILE`` replaces
the text between the lines ``<!-- model-zoo:start -->`` and
``<!-- model-zoo:end -->`` of FILE with it.
"""
import argparse
import copy
import datetime
import gc
import os.path as osp
import sys
import time
import traceback

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path[:0] = [ROOT, osp.dirname(osp.abspath(__file__))]  # mmvit; benchmark

from benchmark import tune_glibc_malloc  # noqa: E402 (tools/analysis)
from mmvit.families import families as family_table  # noqa: E402
from mmvit.utils import benchmark as bench  # noqa: E402
from mmvit.utils.benchmark import (END, START,  # noqa: E402
                                   replace_between_markers, write_markdown)


DETECTORS = {'retinanet': 'RetinaNet', 'mask_rcnn': 'Mask R-CNN'}
# Operators of the detectors that mmengine.analysis has no FLOP rule for
# (the notes say so once); any other one is named per row.
EXPECTED_UNCOUNTED = {'NMSop', 'RoIAlignFunction'}

PAPER_COLUMNS = (
    ('top1', 'paper: ImageNet-1K top-1'),
    ('retinanet', 'paper: RetinaNet 1x box AP'),
    ('mask_rcnn', 'paper: Mask R-CNN 1x box / mask AP'),
    ('fpn', 'paper: Semantic FPN mIoU'),
)
PAPER_NOTE = (
    'Columns marked "paper" are the numbers the papers or their official '
    'releases report for models trained by their authors, not results of '
    'this code: CAS-ViT from the official MODEL_ZOO (2024-12 update; '
    'Semantic FPN 40k iterations on ADE20K); CMT ImageNet top-1 at each '
    'variant\'s training resolution (@160/192/224/256), CMT-S RetinaNet from '
    'the paper (no other CMT downstream numbers were published); '
    'EfficientViT from the paper (ImageNet) and the official downstream '
    'code (m4 only; its Mask R-CNN box AP is not reported); Castling-ViT '
    'publishes no numbers for these variants (their pyramid design is this '
    'project\'s). — = not published.')


def select(families, variants):
    """[(family, variant)] in table order; ``variants`` entries are a name
    (in every selected family that has it) or ``family:variant``."""
    chosen = []
    table = family_table()
    for family in families:
        for variant in table[family].variants:
            if (not variants or variant in variants
                    or f'{family}:{variant}' in variants):
                chosen.append((family, variant))
    known = {v for f in families for v in table[f].variants} | {
        f'{f}:{v}' for f in families for v in table[f].variants}
    unknown = sorted(set(variants or ()) - known)
    if unknown:
        raise ValueError(f'model_zoo: unknown --variants {unknown} for '
                         f'families {list(families)}; known: '
                         f'{sorted(known)}')
    return chosen




def paper_cells(family, variant):
    """The published numbers of ``variant`` as table cells, by column."""
    results = family.paper_results(variant)
    cells = {}
    top1 = results.get('imagenet', {}).get('Top 1 Accuracy')
    if top1 is not None:
        res = [m['Metadata'].get('Training Resolution')
               for m in family.models if m['Metadata'].get('Variant') ==
               variant and 'Training Resolution' in m['Metadata']]
        cells['top1'] = f'{top1:.1f}' + (f' @{res[0]}' if res else '')
    if 'box AP' in results.get('retinanet', {}):
        cells['retinanet'] = f'{results["retinanet"]["box AP"]:.1f}'
    if 'mask_rcnn' in results:
        box = results['mask_rcnn'].get('box AP')
        mask = results['mask_rcnn'].get('mask AP')
        cells['mask_rcnn'] = ('—' if box is None else f'{box:.1f}') + \
            ' / ' + ('—' if mask is None else f'{mask:.1f}')
    if 'mIoU' in results.get('semantic_fpn', {}):
        cells['fpn'] = f'{results["semantic_fpn"]["mIoU"]:.1f}'
    return cells


class Row:
    """The cells of one variant and the errors met filling them."""

    def __init__(self, family, variant):
        self.family, self.variant = family, variant
        self.name = f'{family_table()[family].name} {variant}'
        self.cells = {}
        self.errors = []
        self.notes = []
        self.proposals = {}
        self.noisy = []

    def attempt(self, what, keys, func):
        """Run ``func`` (which fills cells); on an exception mark ``keys``
        as failed and keep the message."""
        try:
            func()
        except Exception as error:  # noqa: BLE001  (one row, not the run)
            self.errors.append((what, error))
            for key in keys:
                self.cells[key] = 'error'
            print(f'{self.name}: {what} failed:', file=sys.stderr)
            traceback.print_exc()


def latency_cell(stats):
    median, low, high = stats
    return f'{median:.1f} ({low:.1f}-{high:.1f})'


def run_variant(row, args, opts):
    import torch
    cls = family_table()[row.family].backbone
    sizes = args.sizes
    state = {}

    def backbone():
        model = bench.build_backbone(cls, row.variant)
        row.cells['params'] = f'{bench.count_params(model) / 1e6:.2f}'
        state['model'] = bench.prepare(model, opts)
        flops, info = bench.count_flops(state['model'], args.flops_size)
        row.cells['flops'] = f'{flops / 1e9:.3f}'
        if info['not counted']:
            row.notes.append(f'backbone: {", ".join(info["not counted"])}')

    row.attempt('backbone', ['params', 'flops'], backbone)

    def latency():
        modules = {'eval': state['model']}
        if args.deploy:
            modules['deployed'] = bench.prepare(
                copy.deepcopy(state['model']), opts, deploy=True)
        measured = bench.measure(modules, sizes, opts)
        for key, result in measured.items():
            state[f'ms_{key}'] = {s: result['ms'][s][0] for s in sizes}
            for size in sizes:
                row.cells[(key, size)] = latency_cell(result['ms'][size])
                if bench.noisy(result['ms'][size]):
                    row.noisy.append(f'{key} @{bench.size_label(size)}')

    keys = [('eval', s) for s in sizes]
    if args.deploy:
        keys += [('deployed', s) for s in sizes]
    if 'model' in state:
        row.attempt('latency', keys, latency)
    else:
        row.cells.update({k: 'error' for k in keys})
    state.pop('model', None)
    gc.collect()

    for det in args.detectors:
        path = osp.join(args.configs_dir, f'{det}_{row.family}_'
                        f'{row.variant}.py')
        if not osp.isfile(path):
            row.cells[det] = '—'
            continue

        def detector(det=det, path=path):
            model = bench.prepare(bench.build_config_model(path), opts)
            try:
                params = bench.count_params(model)
                flops, info = bench.count_flops(model, args.det_size)
            finally:
                del model
                gc.collect()
            row.cells[det] = f'{params / 1e6:.1f} / {flops / 1e9:.1f}'
            if info.get('proposals') is not None:
                row.proposals[det] = info['proposals']
            other = sorted(set(info['not counted']) - EXPECTED_UNCOUNTED)
            if other:
                row.notes.append(f'{DETECTORS[det]}: {", ".join(other)}')

        row.attempt(DETECTORS[det], [det], detector)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return state


def detector_note(args):
    """What the detector columns count."""
    if not args.detectors:
        return ''
    det_label = bench.size_label(args.det_size)
    names = ','.join(args.detectors)
    if len(args.detectors) > 1:
        names = '{' + names + '}'
    text = (f' Detectors: the whole model of `configs/{names}_<family>_'
            '<variant>.py` (backbone, neck, heads; tensor forward without '
            f'post-processing) at {det_label}')
    if tuple(args.det_size) == (800, 1280):
        text += ', i.e. the 1280-wide, 800-high image of the detection papers'
    if 'mask_rcnn' in args.detectors:
        text += ('; Mask R-CNN with the proposals of its randomly '
                 'initialised weights (the RPN keeps up to 1000, the box '
                 'head takes them all, the mask head the first 100; numbers '
                 'below), RoIAlign and NMS counted as 0 (mmengine.analysis '
                 'has no rule for them)')
    return text + '.'


def render(rows, args, opts, tuned):
    """The markdown: the table, then its notes."""
    unit = 'CPU' if opts.device.type == 'cpu' else 'GPU'
    det_label = bench.size_label(args.det_size)
    header = ['model', 'backbone params (M)',
              f'backbone GFLOPs @{bench.size_label(args.flops_size)}']
    header += [f'{unit} ms @{bench.size_label(s)}' for s in args.sizes]
    if args.deploy:
        header += [f'deployed {unit} ms @{bench.size_label(s)}'
                   for s in args.sizes]
    header += [f'{DETECTORS[d]} params (M) / GFLOPs @{det_label}'
               for d in args.detectors]
    header += [title for _, title in PAPER_COLUMNS]

    notes, table_rows = [], []
    for row in rows:
        marks = []
        for what, error in row.errors:
            message = (str(error).strip().splitlines() or [''])[0][:300]
            notes.append(f'{row.name}, {what} failed: '
                         f'{type(error).__name__}: {message}')
            marks.append(f'[{len(notes)}]')
        cells = [row.name + (' ' + ' '.join(marks) if marks else ''),
                 row.cells.get('params', ''), row.cells.get('flops', '')]
        cells += [row.cells.get(('eval', s), '') for s in args.sizes]
        if args.deploy:
            cells += [row.cells.get(('deployed', s), '') for s in args.sizes]
        cells += [row.cells.get(d, '') for d in args.detectors]
        paper = paper_cells(family_table()[row.family], row.variant)
        cells += [paper.get(key, '—') for key, _ in PAPER_COLUMNS]
        table_rows.append(cells)

    device = bench.machine_description(opts.device, args.threads)
    today = datetime.date.today().isoformat()
    lines = [
        bench.markdown_table(header, table_rows), '',
        f'Measured by `tools/analysis/model_zoo.py` on {today}: {device}; '
        f'batch 1, {args.threads} threads, float32, eval forward of the '
        f'backbone (all output stages) on a random input, median (min-max) '
        f'of {args.repeat} runs after {args.warmup} warm-up, the sizes '
        f'alternating; glibc malloc {"tuned" if tuned else "default"} (see '
        f'`mmvit.utils.benchmark`). Sizes are height x width.'
        + (' Deployed: `mmvit.deploy.switch_to_deploy` (BatchNorms folded '
           'into convolutions).' if args.deploy else ''),
        '',
        'GFLOPs: multiply-adds of one image (mmengine.analysis, fvcore '
        'convention).' + detector_note(args),
        '',
        PAPER_NOTE,
    ]
    proposals = [f'{row.name} {row.proposals["mask_rcnn"]}' for row in rows
                 if 'mask_rcnn' in row.proposals]
    if proposals:
        lines += ['', f'Mask R-CNN proposals at {det_label}: ' +
                  ', '.join(proposals) + '.']
    flops_notes = [f'{row.name} {note}' for row in rows
                   for note in row.notes]
    if flops_notes:
        lines += ['', 'FLOPs also not counted (no rule in '
                  'mmengine.analysis): ' + '; '.join(flops_notes) + '.']
    noisy = [f'{row.name} ({", ".join(row.noisy)})' for row in rows
             if row.noisy]
    if noisy:
        lines += ['', f'NOISY: the slowest run took more than '
                  f'{bench.NOISY_SPREAD}x the fastest (the machine was busy; '
                  f'measure again): ' + '; '.join(noisy) + '.']
    if notes:
        lines += [''] + [f'[{i}] {n}'.replace('|', '/')
                         for i, n in enumerate(notes, 1)]
    return '\n'.join(lines) + '\n'


def run(args):
    """Measure the chosen variants and write the markdown where asked;
    returns the rows."""
    import torch
    device = bench.check_device(args.device)
    chosen = select(args.families, args.variants)
    tuned = (device.type == 'cpu' and not args.no_malloc_tuning
             and tune_glibc_malloc())
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    args.sizes = sorted(dict.fromkeys(args.sizes), key=bench.pixels)
    opts = bench.Options(device, batch=1, repeat=args.repeat,
                         warmup=args.warmup, memory=False)
    if getattr(args, 'whole_models', False):
        return run_whole_models(args, chosen, opts, tuned)
    rows, curves = [], {}
    began = time.perf_counter()
    for i, (family, variant) in enumerate(chosen, 1):
        row = Row(family, variant)
        print(f'[{i}/{len(chosen)}] {row.name} (at '
              f'{time.perf_counter() - began:.0f} s)', flush=True)
        state = run_variant(row, args, opts)
        if 'ms_eval' in state:
            curves[row.name] = state['ms_eval']
        print('  ' + ', '.join(f'{k}: {v}' for k, v in row.cells.items()),
              flush=True)
        rows.append(row)
    markdown = render(rows, args, opts, tuned)
    print('\n' + markdown)
    print(f'model_zoo: {len(rows)} variants in '
          f'{time.perf_counter() - began:.0f} s', flush=True)
    write_markdown(markdown, args.out, args.readme)
    if args.plot and curves:
        bench.plot_latency(curves, args.plot, 'eval latency, batch 1 (ms)')
    return rows


WHOLE_START = '<!-- whole-models:start -->'
WHOLE_END = '<!-- whole-models:end -->'

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


def render_whole_models(measured, threads, repeat, warmup, device, tuned):
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


def run_whole_models(args, chosen, opts, tuned):
    """Measure the rows of ``chosen`` variants, print the markdown and
    write it where ``args`` says (``--out``; ``--readme`` between this
    module's markers); returns the markdown."""
    import time

    from mmvit.utils.benchmark import write_markdown
    measured = []
    began = time.perf_counter()
    rows = rows_to_measure(chosen, args.configs_dir)
    for i, (name, paths) in enumerate(rows, 1):
        print(f'[{i}/{len(rows)}] {name} (at '
              f'{time.perf_counter() - began:.0f} s)', flush=True)
        measured.append((name, measure_row(paths, opts)))
    markdown = render_whole_models(measured, args.threads, args.repeat, args.warmup,
                      opts.device, tuned)
    print('\n' + markdown, flush=True)
    write_markdown(markdown, args.out, args.readme, WHOLE_START, WHOLE_END)
    return markdown


FAMILIES = list(family_table())


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--families', nargs='+', choices=FAMILIES, default=FAMILIES)
    parser.add_argument('--variants', nargs='+',
                        help='only these variants: a name (e.g. m0, xs) '
                        'or family:name (e.g. cmt:xs)')
    parser.add_argument('--sizes', nargs='+', type=bench.size_arg,
                        default=[(224, 224), (800, 1216)], metavar='SIZE',
                        help='latency input sizes, S or HxW (height x '
                        'width). Default 224 800x1216')
    parser.add_argument('--flops-size', type=bench.size_arg,
                        default=(224, 224), metavar='SIZE',
                        help='backbone FLOPs input (HxW). Default 224')
    parser.add_argument('--det-size', type=bench.size_arg,
                        default=(800, 1280), metavar='SIZE',
                        help='detector FLOPs input (HxW). Default 800x1280 '
                        '(the papers\' 1280x800 landscape image)')
    parser.add_argument('--detectors', nargs='*', choices=list(DETECTORS),
                        default=list(DETECTORS),
                        help='detector configs to count (none: skip)')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--device', default='cpu', help='cpu, cuda, cuda:N')
    parser.add_argument('--deploy', action='store_true',
                        help='also time the deployed backbones '
                        '(mmvit.deploy.switch_to_deploy), interleaved')
    parser.add_argument('--configs-dir', default=osp.join(ROOT, 'configs'))
    parser.add_argument('--out', help='write the markdown here')
    parser.add_argument('--readme', help='replace the text between the '
                        f'{START} and {END} lines of this file')
    parser.add_argument('--plot', help='PNG of latency against input pixels')
    parser.add_argument('--no-malloc-tuning', action='store_true')
    parser.add_argument('--whole-models', action='store_true',
                        help='instead: RetinaNet, Mask R-CNN, Semantic FPN '
                        'and UperNet of every variant and of ResNet-50, '
                        'latency and GFLOPs (run_whole_models; '
                        '--readme fills the whole-models markers)')
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.threads < 1 or args.warmup < 0:
        parser.error('--repeat and --threads must be >= 1, --warmup >= 0')
    if args.readme:  # fail now, not after the measurements
        if not osp.isfile(args.readme):
            parser.error(f'--readme {args.readme!r}: no such file')
        with open(args.readme) as f:
            markers = (WHOLE_START, WHOLE_END) if args.whole_models else \
                (START, END)
            try:
                replace_between_markers(f.read(), '', *markers)
            except ValueError as error:
                parser.error(f'--readme {args.readme!r}: {error}')
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        select(args.families, args.variants)
        return run(args)
    except ValueError as error:
        raise SystemExit(str(error))


if __name__ == '__main__':
    main()
