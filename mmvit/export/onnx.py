"""ONNX export of mmvit backbones and single-stage detectors, and its check
against onnxruntime (the library behind ``tools/deployment/pytorch2onnx.py``;
see ``docs/deployment.md``).

Before tracing, :func:`export` installs the size-independent layers of
:func:`mmvit.export.prepare_for_export` on a copy of the model, so that one
dynamic graph serves every input size.
"""
import copy
import os
import os.path as osp
import warnings

from mmvit.families import backbone_types

EXPORTERS = ('torchscript', 'dynamo')
DEFAULT_OPSET = {'torchscript': 17, 'dynamo': 18}


class ToolError(Exception):
    """A problem with the arguments or the model, reported without a
    traceback."""


# -- arguments ----------------------------------------------------------------
def check_export_args(args):
    """Check the arguments of the export tool; :class:`ToolError` names
    the bad one."""
    if (args.config is None) == (args.backbone is None):
        raise ToolError('give either a detector or segmentor CONFIG or '
                        '--backbone NAME '
                        '(not both, not neither)')
    if args.backbone is not None:
        if args.backbone not in backbone_types():
            raise ToolError(f'unknown backbone {args.backbone!r}; allowed: '
                            f'{", ".join(backbone_types())}')
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
    whole = args.config is not None and not args.dense_outputs
    if args.backbone is not None and args.dense_outputs:
        raise ToolError('--dense-outputs applies to a RetinaNet CONFIG, not '
                        'to --backbone')
    if not whole and (args.image or args.benchmark):
        raise ToolError('--image and --benchmark apply to whole models (a '
                        'CONFIG without --dense-outputs)')
    if whole and args.exporter != 'torchscript':
        raise ToolError('whole models (post-processing included) export '
                        'with --exporter torchscript only')
    if whole and not args.dynamic:
        raise ToolError('whole models export with dynamic sizes only (the '
                        'number of detections varies); drop --static')
    for image in args.image:
        if not osp.isfile(image):
            raise ToolError(f'--image {image!r} does not exist')
    if args.repeat < 1 or (args.threads is not None and args.threads < 1):
        raise ToolError('--repeat and --threads take positive numbers')


# -- building the model -----------------------------------------------------
def default_arch(name):
    """The ``arch`` a backbone family builds by default."""
    import inspect

    from mmvit.registry import MODELS
    cls = MODELS.get(name)
    return inspect.signature(cls.__init__).parameters['arch'].default


def build_backbone(name, arch=None, checkpoint=None):
    """A backbone of mmvit's registry, with ``checkpoint`` loaded."""
    from mmvit.models.utils import load_pretrained
    from mmvit.registry import MODELS
    if name not in backbone_types():
        raise ToolError(f'unknown backbone {name!r}; allowed: '
                        f'{", ".join(backbone_types())}')
    try:
        model = MODELS.get(name)(
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


def build_detector(config, checkpoint=None, overlays=(), cfg_options=None):
    """The single-stage mmdet detector of ``config`` for its dense outputs
    (``--dense-outputs``), ``checkpoint`` loaded; :class:`ToolError` for
    any other model."""
    cfg, model = build_config_model(config, None, overlays, cfg_options)
    scope = cfg.get('default_scope', 'mmdet')
    whole = ('; without --dense-outputs the whole model exports, '
             'post-processing included')
    if scope != 'mmdet':
        raise ToolError(
            f'{config} builds an {scope} model ({type(model).__name__}); '
            'dense outputs exist for single-stage mmdet detectors such as '
            f'RetinaNet (configs/retinanet_*.py){whole}')
    from mmdet.models.detectors import SingleStageDetector
    if not isinstance(model, SingleStageDetector):
        raise ToolError(
            f'{config} builds a {type(model).__name__}, whose outputs need '
            'RoI operators and per-image metadata; only single-stage '
            'detectors (RetinaNet, configs/retinanet_*.py) have dense '
            f'outputs{whole}')
    if checkpoint is not None:
        load_detector_checkpoint(model, checkpoint)
    return model


def load_detector_checkpoint(model, path):
    """A checkpoint of the whole model, loaded strictly; a backbone-only
    (e.g. ImageNet) file goes into the backbone through its own loader."""
    from mmengine.runner.checkpoint import load_state_dict

    from mmvit.models.utils import extract_state_dict, load_pretrained
    from mmvit.utils.checkpoint import read_checkpoint
    checkpoint = read_checkpoint(path)
    state = extract_state_dict(checkpoint, path, prefix='')
    try:
        if not any(k in model.state_dict() for k in state):
            # a backbone checkpoint, already read
            load_pretrained(model.backbone, path, checkpoint=checkpoint)
        else:
            load_state_dict(model, state, strict=True)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ToolError(f'checkpoint {path!r} does not fit the config: '
                        f'{exc}') from None


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
           opset=None, output_names=None, input_names=('input', ),
           dynamic_axes=None):
    """Export ``model`` (eval mode) traced on ``example`` (a tensor, or a
    tuple of tensors named by ``input_names``) to ``path``. A dynamic
    graph is traced through the size-independent layers of
    :func:`~mmvit.export.layers.prepare_for_export`; a static one through
    the eager layers, whose size-dependent parts (padding, window choice,
    resized position biases) then become constants of the graph.

    ``dynamic_axes`` (torchscript exporter) names the dynamic dimensions
    of every input and output; by default the first input's batch, height
    and width and every output's batch and spatial sizes. Returns the
    output names. Raises :class:`ToolError` when a dynamic export came out
    static.
    """
    import torch
    if exporter not in EXPORTERS:
        raise ToolError(f'unknown exporter {exporter!r}; allowed: '
                        f'{", ".join(EXPORTERS)}')
    opset = opset or DEFAULT_OPSET[exporter]
    from .layers import prepare_for_export
    model = copy.deepcopy(model).eval()
    if dynamic:  # a static graph traces the eager layers at its one size
        prepare_for_export(model)
    example = example if isinstance(example, tuple) else (example, )
    with torch.no_grad():
        outputs = model(*example)
    if isinstance(outputs, torch.Tensor):
        outputs = (outputs, )
    if output_names is None:
        output_names = [f'out{i}' for i in range(len(outputs))]
    input_names = list(input_names)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with warnings.catch_warnings():
        # the traced input checks (channel counts, token counts) become
        # constants on purpose; the shape arithmetic is verified by running
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        warnings.filterwarnings('ignore', category=DeprecationWarning)
        warnings.filterwarnings('ignore', category=FutureWarning)
        warnings.filterwarnings('ignore', category=UserWarning)
        warnings.filterwarnings('ignore', message='Constant folding')
        if exporter == 'torchscript':
            axes = dynamic_axes
            if axes is None:
                axes = {input_names[0]: {0: 'batch', 2: 'height',
                                         3: 'width'}}
                for name in output_names:
                    axes[name] = {0: 'batch', 2: f'{name}_height',
                                  3: f'{name}_width'}
            torch.onnx.export(
                model, example, path, dynamo=False,
                input_names=input_names, output_names=output_names,
                dynamic_axes=axes if dynamic else None,
                opset_version=opset, do_constant_folding=True)
        else:
            if dynamic_axes is not None or len(example) > 1:
                raise ToolError('whole models (post-processing included) '
                                'export with --exporter torchscript only')
            dim = torch.export.Dim.DYNAMIC
            example = example[0]
            if dynamic and example.shape[0] == 1:
                # torch.export specialises dimensions of size 1
                example = example.expand(2, -1, -1, -1)
            shapes = ({0: dim, 2: dim, 3: dim}, ) if dynamic else None
            torch.onnx.export(
                model, (example, ), path, dynamo=True,
                input_names=input_names, output_names=output_names,
                dynamic_shapes=shapes, opset_version=opset,
                external_data=False, verbose=False)
    if dynamic:
        import onnx
        first = onnx.load(path, load_external_data=False).graph.input[0]
        dims = first.type.tensor_type.shape.dim
        wanted = (dynamic_axes or {input_names[0]: (0, 2, 3)})[
            input_names[0]]
        static = [i for i in wanted if dims[i].HasField('dim_value')]
        if static:
            raise ToolError(
                f'the {exporter} exporter fixed input dimensions {static} to '
                f'the example\'s {[dims[i].dim_value for i in static]} '
                'instead of keeping them dynamic; use --exporter torchscript '
                '(or --static)')
    return output_names


def onnx_runtime_module(model, path, example, threads=None, dynamic=True):
    """``model`` exported to ``path`` (:func:`export`, traced on the
    tensor ``example``) as a module that runs the graph in onnxruntime with
    ``threads`` threads: images in, the graph's outputs out (a tensor, or a
    tuple of them); for timing and comparing it beside PyTorch."""
    import torch

    from .predictor import onnx_session
    export(model.eval(), example, path, dynamic=dynamic)
    session = onnx_session(path, threads)

    class OnnxRuntimeModule(torch.nn.Module):

        def forward(self, x):
            outs = [torch.from_numpy(o) for o in
                    session.run(None, {'input': x.numpy()})]
            return outs[0] if len(outs) == 1 else tuple(outs)

    return OnnxRuntimeModule()


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


def report_verification(model, path, cases, names, atol):
    """Print the largest difference of every output for each case of
    :func:`verify`; returns 1 when one exceeds ``atol``, else 0."""
    failed = False
    for (batch, height, width), diffs in verify(model, path, cases):
        worst = max(diffs)
        failed |= worst > atol
        print(f'verify {batch}x3x{height}x{width}: max abs diff '
              + ', '.join(f'{n}={d:.2e}' for n, d in zip(names, diffs))
              + f' -> {"OK" if worst <= atol else "FAIL"} '
              f'(atol {atol:g})')
    return 1 if failed else 0


# -- whole models: detectors and segmentors with their post-processing ------
#: largest differences accepted between onnxruntime's and PyTorch's
#: predictions of a whole model (boxes in pixels of the original image)
WHOLE_MODEL_TOLERANCE = dict(max_box_diff=1e-2, max_score_diff=1e-4,
                             mask_pixels_differing=1e-3,
                             label_pixels_differing=1e-3)


def build_config_model(config, checkpoint=None, overlays=(),
                       cfg_options=None):
    """(config, model) of an mmdet or mmseg config, ``checkpoint`` loaded
    (a whole-model or a backbone checkpoint); eval mode."""
    from mmvit.utils.config import build_model, load_config
    try:
        cfg = load_config(config, overlays, cfg_options)
    except (OSError, SyntaxError, TypeError) as exc:
        raise ToolError(str(exc)) from None
    model = build_model(cfg)
    if checkpoint is not None:
        load_detector_checkpoint(model, checkpoint)
    return cfg, model.eval()


def export_end_to_end(model, shape, path, opset=None):
    """Export ``model`` with its post-processing
    (:func:`mmvit.export.whole_model.end_to_end`) traced at ``shape``
    (H, W) with dynamic height and width (and batch for segmentors and
    classifiers); returns (input names, output names)."""
    import torch

    from .whole_model import end_to_end
    try:
        wrapper, inputs, outputs = end_to_end(model)
    except NotImplementedError as exc:
        raise ToolError(str(exc)) from None
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, *shape, generator=generator) * 4 - 2
    if outputs == ['scores']:  # classifier
        example = image
        axes = {'input': {0: 'batch', 2: 'height', 3: 'width'},
                'scores': {0: 'batch'}}
    elif len(inputs) == 1:  # segmentor
        example = image
        axes = {'input': {0: 'batch', 2: 'height', 3: 'width'},
                outputs[0]: {0: 'batch', 2: 'height', 3: 'width'}}
    else:
        example = (image, torch.tensor(shape, dtype=torch.float32),
                   torch.ones(2))
        axes = {'input': {2: 'height', 3: 'width'}}
        axes.update({name: {0: 'detections'} for name in outputs})
    export(wrapper, example, path, opset=opset, output_names=outputs,
           input_names=inputs, dynamic_axes=axes)
    return inputs, outputs


def export_checkpoint(config, checkpoint, out, overlays=(), cfg_options=None,
                      shape=(320, 320), opset=None):
    """The whole model of ``config`` with ``checkpoint`` loaded, deployed
    (:func:`mmvit.deploy.switch_to_deploy`) and exported to ``out`` with
    dynamic sizes (traced at ``shape``); returns (config, deployed
    model)."""
    from mmvit.deploy import switch_to_deploy
    cfg, model = build_config_model(config, checkpoint, overlays,
                                    cfg_options)
    switch_to_deploy(model)
    export_end_to_end(model, shape, out, opset)
    return cfg, model


def synthetic_images(folder, sizes, seed=0):
    """PNG files of random shapes on noise, one per (H, W) of ``sizes``,
    for checks when no image is given."""
    import numpy as np
    from PIL import Image, ImageDraw
    rng = np.random.default_rng(seed)
    paths = []
    for i, (height, width) in enumerate(sizes):
        pixels = rng.integers(60, 120, (height, width, 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
        draw = ImageDraw.Draw(image)
        for _ in range(4):
            x, y = rng.integers(0, width - 8), rng.integers(0, height - 8)
            size = int(rng.integers(8, max(9, min(height, width) // 3)))
            color = tuple(int(c) for c in rng.integers(0, 255, 3))
            draw.ellipse([x, y, x + size, y + size], fill=color)
        path = osp.join(folder, f'synthetic_{i}_{height}x{width}.png')
        image.save(path)
        paths.append(path)
    return paths


def verify_end_to_end(cfg, model, onnx_file, images, threads=None):
    """Compare onnxruntime's predictions with ``model``'s (``predict`` on
    the same preprocessed input) for each image file:
    ``[(image, input size, comparison), ...]`` with the comparisons of
    :func:`mmvit.export.predictor.compare`."""
    import torch

    from .predictor import OnnxPredictor, compare
    predictor = OnnxPredictor(cfg, onnx_file, threads)
    results = []
    for image in images:
        inputs, samples = predictor.preprocess(image)
        with torch.no_grad():
            reference = model.predict(inputs, copy.deepcopy(samples))[0]
        got = predictor.run(inputs, copy.deepcopy(samples))[0]
        results.append((image, tuple(inputs.shape[2:]),
                        compare(reference, got)))
    return results


def within_tolerance(comparison, tolerance=None):
    """The names of the measures of ``comparison`` beyond ``tolerance``
    (:data:`WHOLE_MODEL_TOLERANCE`); empty when it agrees."""
    tolerance = tolerance or WHOLE_MODEL_TOLERANCE
    bad = [k for k, v in comparison.items() if k in tolerance and
           v > tolerance[k]]
    if 'count' in comparison and len(set(comparison['count'])) > 1:
        bad.append('count')
    if comparison.get('labels_equal') is False:
        bad.append('labels_equal')
    return bad


def report_end_to_end(results):
    """Print each comparison of :func:`verify_end_to_end`; 1 when one is
    beyond the tolerance, else 0."""
    failed = False
    for image, size, comparison in results:
        bad = within_tolerance(comparison)
        failed |= bool(bad)
        words = ', '.join(f'{k}={v:.2e}' if isinstance(v, float) else
                          f'{k}={v}' for k, v in comparison.items())
        print(f'verify {osp.basename(image)} (input {size[0]}x{size[1]}): '
              f'{words} -> {"FAIL " + ", ".join(bad) if bad else "OK"}')
    return 1 if failed else 0
