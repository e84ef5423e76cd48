"""The model zoo table: every backbone variant, measured and as published
(the library behind ``tools/analysis/model_zoo.py``).

For each variant of the family table (:mod:`mmvit.families`): the
backbone's parameters and GFLOPs, its CPU eval latency at the given sizes
(functions of :mod:`mmvit.analysis.benchmark`), the parameters and GFLOPs
of its RetinaNet and Mask R-CNN configs, and the numbers its metafile
records as published, in columns marked "paper". A model that fails gets an
error mark in its row and a note; the run goes on.
"""
import copy
import datetime
import gc
import os.path as osp
import sys
import time
import traceback

from mmvit.families import families as family_table
from . import benchmark as bench

START = '<!-- model-zoo:start -->'
END = '<!-- model-zoo:end -->'

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


def write_markdown(markdown, out=None, readme=None, start=START, end=END):
    """Write ``markdown`` to the file ``out`` and between the ``start`` and
    ``end`` lines of the file ``readme`` (each where given)."""
    if out:
        with open(out, 'w') as f:
            f.write(markdown)
    if readme:
        with open(readme) as f:
            text = f.read()
        try:
            text = replace_between_markers(text, markdown, start, end)
        except ValueError as error:
            raise ValueError(f'--readme {readme}: {error}')
        with open(readme, 'w') as f:
            f.write(text)


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
        f'`mmvit.analysis.benchmark`). Sizes are height x width.'
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
             and bench.tune_glibc_malloc())
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    args.sizes = sorted(dict.fromkeys(args.sizes), key=bench.pixels)
    opts = bench.Options(device, batch=1, repeat=args.repeat,
                         warmup=args.warmup, memory=False)
    if getattr(args, 'whole_models', False):
        from . import whole_models
        return whole_models.run(args, chosen, opts, tuned)
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


