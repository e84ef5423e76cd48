#!/usr/bin/env python
"""Export an mmvit backbone, or a RetinaNet built on one, to ONNX.

Two modes:

* a backbone: ``--backbone {CASViT,CMT,CastlingViT,EfficientViT}`` with
  ``--arch`` (and optionally ``--checkpoint``: an official ImageNet file, a
  checkpoint of our training runs or a bare state dict, loaded like the
  backbones' ``init_cfg=dict(type='Pretrained')``). Outputs ``out0..`` are
  the stage outputs (NCHW maps), in ``out_indices`` order.
* a detector config (``CONFIG [--checkpoint CKPT]``): a single-stage mmdet
  detector such as the RetinaNet configs ``configs/retinanet_*.py``. The
  graph holds backbone, neck and head without post-processing (no anchor
  decoding, no NMS): ``out0..out{L-1}`` are the per-level classification
  scores (logits) and ``out{L}..out{2L-1}`` the box regressions, i.e. what
  ``model._forward(x)`` returns. Its input is the image after the model's
  data preprocessor (BGR->RGB, mean/std normalised; RetinaNet pads to
  multiples of 32 but the graph accepts any size).

The input is ``input`` (N, 3, H, W). With ``--dynamic`` (default) batch,
height and width are dynamic; ``--static`` fixes them to ``--shape``. By
default the model is first deployed (``mmvit.deploy.switch_to_deploy``:
Conv+BN folding, Castling-ViT's training-only branch removed).

Exporters: ``--exporter torchscript`` (default; ``torch.onnx.export(...,
dynamo=False)``) records the shape arithmetic of every family and takes
seconds; ``--exporter dynamo`` (the ``torch.export`` path, batch, height and
width as ``Dim.DYNAMIC``) gives equally dynamic graphs for every family and
the RetinaNets but takes longer (about 40 s for CMT-ti). A dynamic export
that comes out static (input size fixed) is refused as an error.

Valid input sizes of the dynamic graphs: every size the PyTorch model
accepts (checked from 1x1 to detection sizes). The backbones branch on the
size only in layers that, while traced (``mmvit.models.layers
.is_exporting``), take a size-independent path computing the same: CMT pads
its patch convolutions unconditionally and always resizes its position bias
(bicubic, an exact identity at the training grid; onnxruntime's cubic Resize
matches PyTorch's within about 1e-5 relative); EfficientViT always pads the
map to whole 7x7 windows and, where the map fits in one window (which eager
mode attends as a whole), masks the padding out of the attention.

``--verify`` runs onnxruntime on the example size and, for dynamic graphs,
on the ``--verify-shape`` sizes (default: one smaller, non-square size that
is no multiple of 32) with a batch one larger, and prints the largest
absolute difference to PyTorch for every output. Exit status: 0 on success,
1 when a difference exceeds ``--atol`` (default 1e-4), 2 for bad arguments
or a model that cannot be exported.

Examples::

    python tools/deployment/pytorch2onnx.py --backbone CASViT --arch s \\
        --out cas_vit_s.onnx --verify
    python tools/deployment/pytorch2onnx.py --backbone EfficientViT \\
        --arch m4 --checkpoint checkpoints/efficientvit_m4.pth \\
        --shape 512 512 --out efficientvit_m4.onnx
    python tools/deployment/pytorch2onnx.py configs/retinanet_cas_vit_s.py \\
        --checkpoint work_dirs/retinanet_cas_vit_s/epoch_12.pth \\
        --out retinanet_cas_vit_s.onnx --verify
"""
import argparse
import os
import os.path as osp
import sys
import time
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

BACKBONES = ('CASViT', 'CMT', 'CastlingViT', 'EfficientViT')
EXPORTERS = ('torchscript', 'dynamo')
DEFAULT_OPSET = {'torchscript': 17, 'dynamo': 18}


class ToolError(Exception):
    """A problem with the arguments or the model, reported without a
    traceback."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export an mmvit backbone or a RetinaNet detector to '
        'ONNX (see the module docstring for details).',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument(
        'config', nargs='?',
        help='a detector config (single-stage mmdet detector, e.g. '
        'configs/retinanet_cas_vit_s.py); omit it with --backbone')
    parser.add_argument(
        '--backbone', help='export a bare backbone: one of ' +
        ', '.join(BACKBONES))
    parser.add_argument(
        '--arch', help='backbone variant (default: the family default)')
    parser.add_argument(
        '--checkpoint', help='weights to load (backbone or detector '
        'checkpoint); random initialisation without it')
    parser.add_argument('--out', help='output .onnx file (default: '
                        '<backbone>_<arch>.onnx or <config name>.onnx)')
    parser.add_argument(
        '--shape', type=int, nargs=2, metavar=('H', 'W'),
        help='example input size (default 224 224 for backbones, '
        '800 1216 for detectors)')
    parser.add_argument('--batch', type=int, default=1,
                        help='example batch size')
    parser.add_argument('--opset', type=int,
                        help='ONNX opset (default 17 for the torchscript '
                        'exporter, 18 for dynamo)')
    parser.add_argument('--exporter', default='torchscript',
                        choices=EXPORTERS, help='torch.onnx exporter')
    parser.add_argument(
        '--no-deploy', action='store_true',
        help='export the model as built, without switch_to_deploy')
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--dynamic', dest='dynamic', action='store_true',
                       default=True,
                       help='dynamic batch, height and width (default)')
    group.add_argument('--static', dest='dynamic', action='store_false',
                       help='fix the input to the example size')
    parser.add_argument(
        '--verify', action='store_true',
        help='compare onnxruntime with PyTorch on the example size and the '
        '--verify-shape sizes')
    parser.add_argument(
        '--verify-shape', type=int, nargs=2, action='append',
        metavar=('H', 'W'),
        help='another input size for --verify (repeatable; default: one '
        'smaller non-square size that is no multiple of 32)')
    parser.add_argument('--atol', type=float, default=1e-4,
                        help='largest accepted absolute difference')
    args = parser.parse_args(argv)
    try:
        check_args(args)
    except ToolError as exc:
        parser.error(str(exc))
    return args


def check_args(args):
    if (args.config is None) == (args.backbone is None):
        raise ToolError('give either a detector CONFIG or --backbone NAME '
                        '(not both, not neither)')
    if args.backbone is not None:
        if args.backbone not in BACKBONES:
            raise ToolError(f'unknown backbone {args.backbone!r}; allowed: '
                            f'{", ".join(BACKBONES)}')
    else:
        if args.arch is not None:
            raise ToolError('--arch selects a backbone variant; a config '
                            'names its own')
        if not osp.isfile(args.config):
            raise ToolError(f'config file {args.config!r} does not exist')
    if args.checkpoint is not None and not osp.isfile(args.checkpoint):
        raise ToolError(f'checkpoint file {args.checkpoint!r} does not exist')
    sizes = [args.shape] if args.shape else []
    sizes += args.verify_shape or []
    if any(s <= 0 for size in sizes for s in size) or args.batch <= 0:
        raise ToolError('--shape, --verify-shape and --batch take positive '
                        'sizes')
    if args.atol <= 0:
        raise ToolError('--atol must be positive')
    if args.opset is None:
        args.opset = DEFAULT_OPSET[args.exporter]
    if args.out is not None and osp.isdir(args.out):
        raise ToolError(f'--out {args.out!r} is a directory; name a file')


# -- building the model -----------------------------------------------------
def default_arch(name):
    """The ``arch`` a backbone family builds by default."""
    import inspect

    from mmvit.models import backbones
    cls = getattr(backbones, name)
    return inspect.signature(cls.__init__).parameters['arch'].default


def build_backbone(name, arch=None, checkpoint=None):
    """A backbone of mmvit's registry, with ``checkpoint`` loaded."""
    import mmvit  # noqa: F401  (safe torch.load globals)
    from mmvit.models import backbones
    from mmvit.models.utils import load_pretrained
    if name not in BACKBONES:
        raise ToolError(f'unknown backbone {name!r}; allowed: '
                        f'{", ".join(BACKBONES)}')
    try:  # the class itself: a registry lookup depends on the default scope
        model = getattr(backbones, name)(
            **({} if arch is None else dict(arch=arch)))
    except (ValueError, TypeError, KeyError) as exc:
        raise ToolError(f'cannot build {name}: {exc}') from None
    if checkpoint is not None:
        try:
            load_pretrained(model, checkpoint)
        except (ValueError, KeyError, TypeError) as exc:
            raise ToolError(str(exc)) from None
    return model


def dense_outputs(detector):
    """``detector`` (single-stage) as a module from image to the flat tuple
    of its head's tensors: all classification maps, then all box maps."""
    from torch import nn

    class DenseOutputs(nn.Module):

        def __init__(self, detector):
            super().__init__()
            self.detector = detector

        def forward(self, x):
            groups = self.detector._forward(x)
            if len(groups) != 2:
                raise ToolError(
                    f'{type(self.detector.bbox_head).__name__} returns '
                    f'{len(groups)} groups of maps; this tool exports heads '
                    'returning (cls_scores, bbox_preds), such as RetinaHead')
            return tuple(t for group in groups for t in group)

    return DenseOutputs(detector)


def build_detector(config, checkpoint=None):
    """The single-stage mmdet detector of ``config``, ``checkpoint`` loaded;
    :class:`ToolError` for any other model."""
    import mmvit  # noqa: F401
    from mmengine.registry import init_default_scope

    from mmvit.utils.config import check_mmvit_types, load_config
    cfg = load_config(config)
    check_mmvit_types(cfg, config)
    scope = cfg.get('default_scope', 'mmdet')
    model_type = cfg.model.get('type', '?')
    if scope != 'mmdet':
        raise ToolError(
            f'{config} builds an {scope} model ({model_type}); this tool '
            'exports backbones (--backbone) and single-stage mmdet detectors '
            'such as RetinaNet (configs/retinanet_*.py)')
    init_default_scope('mmdet')
    from mmdet.models.detectors import SingleStageDetector
    from mmdet.registry import MODELS
    model = MODELS.build(cfg.model)
    if not isinstance(model, SingleStageDetector):
        raise ToolError(
            f'{config} builds a {type(model).__name__}, whose outputs need '
            'RoI operators and per-image metadata; only single-stage '
            'detectors (RetinaNet, configs/retinanet_*.py) export as plain '
            'tensors here. Export its backbone with --backbone instead.')
    if checkpoint is not None:
        load_detector_checkpoint(model, checkpoint)
    return model


def load_detector_checkpoint(model, path):
    """A detector checkpoint; a backbone-only (e.g. ImageNet) file goes into
    the backbone through the backbone's own loader."""
    from mmengine.logging import print_log

    from mmvit.models.utils.checkpoint import read_checkpoint
    from mmvit.models.utils import load_pretrained
    checkpoint = read_checkpoint(path)
    state = checkpoint.get('state_dict', checkpoint) \
        if isinstance(checkpoint, dict) else {}
    state = {k[7:] if k.startswith('module.') else k: v
             for k, v in state.items()}
    own = model.state_dict()
    if not any(k in own for k in state):
        print_log(f'{path}: no detector keys; loading it as a backbone '
                  'checkpoint', logger='current')
        try:
            load_pretrained(model.backbone, path)
        except (ValueError, KeyError, TypeError) as exc:
            raise ToolError(str(exc)) from None
        return
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise ToolError(f'checkpoint {path!r} does not fit the config: '
                        f'{exc}') from None
    print_log(f'{path}: loaded {len(own) - len(missing)}/{len(own)} '
              'tensors', logger='current')
    for kind, keys in (('missing', missing), ('unexpected', unexpected)):
        if keys:
            print_log(f'{kind} keys: {", ".join(list(keys)[:20])}'
                      f'{" ..." if len(keys) > 20 else ""}',
                      logger='current', level=30)


def describe_preprocessing(detector):
    """Print what the graph's input must be (the data preprocessor is not
    part of it)."""
    pre = detector.data_preprocessor
    mean, std = getattr(pre, 'mean', None), getattr(pre, 'std', None)
    if mean is None or std is None:
        return
    order = 'RGB' if getattr(pre, '_channel_conversion', False) else \
        'the loaded channel order'
    print(f'input: images in {order}, (x - mean) / std with mean='
          f'{[round(v, 3) for v in mean.flatten().tolist()]}, std='
          f'{[round(v, 3) for v in std.flatten().tolist()]} (the config\'s '
          'data preprocessor, not part of the graph)')


# -- export -----------------------------------------------------------------
def export(model, example, path, dynamic=True, exporter='torchscript',
           opset=None, output_names=None):
    """Export ``model`` (eval mode) traced on ``example`` to ``path``.

    Returns the output names. Raises :class:`ToolError` when a dynamic
    export came out static.
    """
    import torch
    if exporter not in EXPORTERS:
        raise ToolError(f'unknown exporter {exporter!r}; allowed: '
                        f'{", ".join(EXPORTERS)}')
    opset = opset or DEFAULT_OPSET[exporter]
    model.eval()
    with torch.no_grad():
        outputs = model(example)
    if isinstance(outputs, torch.Tensor):
        outputs = (outputs, )
    if output_names is None:
        output_names = [f'out{i}' for i in range(len(outputs))]
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with warnings.catch_warnings():
        # the traced input checks (channel counts, token counts) become
        # constants on purpose; the shape arithmetic is verified by running
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        warnings.filterwarnings('ignore', category=DeprecationWarning)
        warnings.filterwarnings('ignore', category=FutureWarning)
        warnings.filterwarnings('ignore', message='Constant folding')
        if exporter == 'torchscript':
            axes = {'input': {0: 'batch', 2: 'height', 3: 'width'}}
            for name in output_names:
                axes[name] = {0: 'batch', 2: f'{name}_height',
                              3: f'{name}_width'}
            torch.onnx.export(
                model, (example, ), path, dynamo=False,
                input_names=['input'], output_names=output_names,
                dynamic_axes=axes if dynamic else None,
                opset_version=opset, do_constant_folding=True)
        else:
            dim = torch.export.Dim.DYNAMIC
            if dynamic and example.shape[0] == 1:
                # torch.export specialises dimensions of size 1
                example = example.expand(2, -1, -1, -1)
            shapes = ({0: dim, 2: dim, 3: dim}, ) if dynamic else None
            torch.onnx.export(
                model, (example, ), path, dynamo=True,
                input_names=['input'], output_names=output_names,
                dynamic_shapes=shapes, opset_version=opset,
                external_data=False, verbose=False)
    if dynamic:
        import onnx
        dims = onnx.load(path, load_external_data=False).graph.input[0] \
            .type.tensor_type.shape.dim
        static = [i for i in (0, 2, 3) if dims[i].HasField('dim_value')]
        if static:
            raise ToolError(
                f'the {exporter} exporter fixed input dimensions {static} to '
                f'the example\'s {[dims[i].dim_value for i in static]} '
                'instead of keeping them dynamic; use --exporter torchscript '
                '(or --static)')
    return output_names


def default_verify_shape(height, width):
    """A smaller, non-square size that is no multiple of 32."""
    return max(height * 3 // 4, 64) + 5, max(width * 5 // 8, 64) + 3


def verify(model, path, cases, seed=0):
    """Max abs difference of every output between onnxruntime and PyTorch
    for a random input of each ``(N, H, W)`` of ``cases``;
    ``[(case, [diff, ...]), ...]``."""
    import numpy as np
    import torch
    try:
        import onnxruntime as ort
    except ImportError:
        raise ToolError('--verify needs onnxruntime (pip install '
                        'onnxruntime==1.31.1)') from None
    session = ort.InferenceSession(path,
                                   providers=['CPUExecutionProvider'])
    generator = torch.Generator().manual_seed(seed)
    results = []
    for batch, height, width in cases:
        x = torch.rand(batch, 3, height, width, generator=generator) * 4 - 2
        with torch.no_grad():
            expected = model(x)
        if isinstance(expected, torch.Tensor):
            expected = (expected, )
        got = session.run(None, {'input': x.numpy()})
        if len(got) != len(expected):
            raise ToolError(f'onnxruntime gave {len(got)} outputs, PyTorch '
                            f'{len(expected)}')
        diffs = []
        for ort_out, ref in zip(got, expected):
            ref = ref.numpy()
            if ort_out.shape != ref.shape:
                diffs.append(float('inf'))
            else:
                diffs.append(float(np.abs(ort_out - ref).max()))
        results.append(((batch, height, width), diffs))
    return results


def main(argv=None):
    args = parse_args(argv)
    import torch

    from mmvit.deploy import switch_to_deploy
    try:
        if args.backbone is not None:
            arch = args.arch or default_arch(args.backbone)
            model = build_backbone(args.backbone, arch, args.checkpoint)
            shape = tuple(args.shape or (224, 224))
            out = args.out or f'{args.backbone.lower()}_{arch}.onnx'
            kind = f'{args.backbone}-{arch}'
        else:
            model = build_detector(args.config, args.checkpoint)
            shape = tuple(args.shape or (800, 1216))
            out = args.out or osp.splitext(osp.basename(args.config))[0] + \
                '.onnx'
            kind = type(model).__name__ + ' from ' + args.config
        if args.checkpoint is None:
            print('note: no --checkpoint, exporting random weights')
        if not args.no_deploy:
            switch_to_deploy(model)
        model.eval()
        if args.config is not None:
            describe_preprocessing(model)
            model = dense_outputs(model)
        example = torch.rand(args.batch, 3, *shape) * 4 - 2
        start = time.time()
        names = export(model, example, out, args.dynamic, args.exporter,
                       args.opset)
        print(f'exported {kind} to {out} in {time.time() - start:.1f} s '
              f'({args.exporter} exporter, opset {args.opset}, '
              f'{"dynamic batch/height/width" if args.dynamic else "static"}'
              f' input {args.batch}x3x{shape[0]}x{shape[1]}); outputs: '
              f'{", ".join(names)}')
        if args.config is not None:
            levels = len(names) // 2
            print(f'out0..out{levels - 1}: classification scores per level,'
                  f' out{levels}..out{2 * levels - 1}: box regressions')
        if not args.verify:
            return 0
        cases = [(args.batch, *shape)]
        if args.dynamic:  # other sizes, and another batch size
            cases += [(args.batch + 1, *size) for size in args.verify_shape
                      or [default_verify_shape(*shape)]]
        elif args.verify_shape:
            print('note: --static graph, verifying the example size only')
        failed = False
        for (batch, height, width), diffs in verify(model, out, cases):
            worst = max(diffs)
            failed |= worst > args.atol
            print(f'verify {batch}x3x{height}x{width}: max abs diff '
                  + ', '.join(f'{n}={d:.2e}' for n, d in zip(names, diffs))
                  + f' -> {"OK" if worst <= args.atol else "FAIL"} '
                  f'(atol {args.atol:g})')
        return 1 if failed else 0
    except ToolError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
