#!/usr/bin/env python
"""The model zoo table: every backbone variant, measured and as published.

    python tools/analysis/model_zoo.py --threads 2 --repeat 3 \\
        --out work_dirs/model_zoo.md --plot work_dirs/model_zoo.png \\
        [--readme README.md]

For each variant of CAS-ViT, CMT, EfficientViT and Castling-ViT (17; see
``--families`` and ``--variants`` to restrict): the backbone's parameters
and GFLOPs at 224x224, its CPU eval latency at 224x224 and 800x1216 (H x W;
batch 1, ``--threads`` threads, median and range of ``--repeat`` runs after
``--warmup``, the two sizes alternating), the parameters and GFLOPs of the
RetinaNet and Mask R-CNN detectors of ``configs/`` at 800x1280 (H x W: the
papers' 1280x800 image; whole detector, tensor forward without
post-processing), and the ImageNet / COCO / ADE20K numbers the papers (or
official model zoos) report, in columns marked "paper". It uses the
functions of ``tools/analysis/benchmark.py`` (see there for what is
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
import importlib.util
import os.path as osp
import sys
import time
import traceback

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)


def _load_benchmark():
    """tools/analysis/benchmark.py as a module (tools/ is not a package)."""
    path = osp.join(osp.dirname(osp.abspath(__file__)), 'benchmark.py')
    spec = importlib.util.spec_from_file_location('mmvit_benchmark', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_benchmark()

START = '<!-- model-zoo:start -->'
END = '<!-- model-zoo:end -->'

# family key (as in the config names) -> backbone class, display name and
# variants, smallest first.
FAMILIES = {
    'cas_vit': ('CASViT', 'CAS-ViT', ('xs', 's', 'm', 't')),
    'cmt': ('CMT', 'CMT', ('ti', 'xs', 's', 'b')),
    'efficientvit': ('EfficientViT', 'EfficientViT',
                     ('m0', 'm1', 'm2', 'm3', 'm4', 'm5')),
    'castling_vit': ('CastlingViT', 'Castling-ViT', ('xs', 's', 'm')),
}

DETECTORS = {'retinanet': 'RetinaNet', 'mask_rcnn': 'Mask R-CNN'}
# Operators of the detectors that mmengine.analysis has no FLOP rule for
# (the notes say so once); any other one is named per row.
EXPECTED_UNCOUNTED = {'NMSop', 'RoIAlignFunction'}

# The numbers the papers / official releases report (/work/shared/specs):
# ImageNet-1K top-1 (%), RetinaNet 1x COCO box AP, Mask R-CNN 1x COCO box /
# mask AP, Semantic FPN ADE20K mIoU. Absent: not published.
PAPER = {
    ('cas_vit', 'xs'): dict(top1='78.3', retinanet='36.5',
                            mask_rcnn='37.4 / 34.9', fpn='37.1'),
    ('cas_vit', 's'): dict(top1='80.9', retinanet='38.6',
                           mask_rcnn='39.8 / 36.7', fpn='41.3'),
    ('cas_vit', 'm'): dict(top1='82.8', retinanet='40.9',
                           mask_rcnn='42.3 / 38.9', fpn='43.6'),
    ('cas_vit', 't'): dict(top1='83.9', retinanet='41.9',
                           mask_rcnn='43.5 / 39.6', fpn='45.0'),
    # CMT: top-1 at each variant's training resolution.
    ('cmt', 'ti'): dict(top1='79.0 @160'),
    ('cmt', 'xs'): dict(top1='81.8 @192'),
    ('cmt', 's'): dict(top1='83.5 @224', retinanet='44.3'),
    ('cmt', 'b'): dict(top1='84.5 @256'),
    ('efficientvit', 'm0'): dict(top1='63.2'),
    ('efficientvit', 'm1'): dict(top1='68.4'),
    ('efficientvit', 'm2'): dict(top1='70.8'),
    ('efficientvit', 'm3'): dict(top1='73.4'),
    ('efficientvit', 'm4'): dict(top1='74.3', retinanet='32.7',
                                 mask_rcnn='— / 31.0'),
    ('efficientvit', 'm5'): dict(top1='77.1'),
}
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


def replace_between_markers(text, content, start=START, end=END):
    """``text`` with the lines between ``start`` and ``end`` replaced by
    ``content``; the markers stay. ValueError unless each occurs once, in
    that order."""
    if text.count(start) != 1 or text.count(end) != 1:
        raise ValueError(f'expected exactly one {start!r} and one {end!r} '
                         f'line (found {text.count(start)} and '
                         f'{text.count(end)})')
    i, j = text.index(start), text.index(end)
    if j < i:
        raise ValueError(f'{end!r} comes before {start!r}')
    return (text[:i + len(start)] + '\n\n' + content.strip('\n') + '\n\n' +
            text[j:])


def select(families, variants):
    """[(family, variant)] in table order; ``variants`` entries are a name
    (in every selected family that has it) or ``family:variant``."""
    chosen = []
    for family in families:
        for variant in FAMILIES[family][2]:
            if (not variants or variant in variants
                    or f'{family}:{variant}' in variants):
                chosen.append((family, variant))
    known = {v for f in families for v in FAMILIES[f][2]} | {
        f'{f}:{v}' for f in families for v in FAMILIES[f][2]}
    unknown = sorted(set(variants or ()) - known)
    if unknown:
        raise SystemExit(f'model_zoo: unknown --variants {unknown} for '
                         f'families {list(families)}; known: '
                         f'{sorted(known)}')
    return chosen


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--families', nargs='+', choices=list(FAMILIES),
                        default=list(FAMILIES))
    parser.add_argument('--variants', nargs='+',
                        help='only these variants: a name (e.g. m0, xs) '
                        'or family:name (e.g. cmt:xs)')
    parser.add_argument('--sizes', nargs='+', type=bench._size_arg,
                        default=[(224, 224), (800, 1216)], metavar='SIZE',
                        help='latency input sizes, S or HxW (height x '
                        'width). Default 224 800x1216')
    parser.add_argument('--flops-size', type=bench._size_arg,
                        default=(224, 224), metavar='SIZE',
                        help='backbone FLOPs input (HxW). Default 224')
    parser.add_argument('--det-size', type=bench._size_arg,
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
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.threads < 1 or args.warmup < 0:
        parser.error('--repeat and --threads must be >= 1, --warmup >= 0')
    if args.readme:  # fail now, not after the measurements
        if not osp.isfile(args.readme):
            parser.error(f'--readme {args.readme!r}: no such file')
        with open(args.readme) as f:
            try:
                replace_between_markers(f.read(), '')
            except ValueError as error:
                parser.error(f'--readme {args.readme!r}: {error}')
    return args


class Row:
    """The cells of one variant and the errors met filling them."""

    def __init__(self, family, variant):
        self.family, self.variant = family, variant
        self.name = f'{FAMILIES[family][1]} {variant}'
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
    cls = FAMILIES[row.family][0]
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
        paper = PAPER.get((row.family, row.variant), {})
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
        f'`tools/analysis/benchmark.py`). Sizes are height x width.'
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


def main(argv=None):
    args = parse_args(argv)
    import torch
    device = bench.check_device(args.device)
    chosen = select(args.families, args.variants)
    tuned = (device.type == 'cpu' and not args.no_malloc_tuning
             and bench.tune_glibc_malloc())
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    args.sizes = sorted(dict.fromkeys(args.sizes), key=bench.pixels)
    opts = bench.Options(device, batch=1, repeat=args.repeat,
                         warmup=args.warmup, memory=False)
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
    if args.out:
        with open(args.out, 'w') as f:
            f.write(markdown)
    if args.readme:
        with open(args.readme) as f:
            text = f.read()
        try:
            text = replace_between_markers(text, markdown)
        except ValueError as error:
            raise SystemExit(f'model_zoo: --readme {args.readme}: {error}')
        with open(args.readme, 'w') as f:
            f.write(text)
    if args.plot and curves:
        bench.plot_latency(curves, args.plot, 'eval latency, batch 1 (ms)')
    return rows


if __name__ == '__main__':
    main()
