"""ONNX export with dynamic input sizes (mmvit.export.onnx and its tool
tools/deployment/pytorch2onnx.py).

Each family (smallest variant, random weights) is exported once, traced at
224x224, and onnxruntime must reproduce the deployed PyTorch model within
1e-4 at two other non-square sizes, 1x3x160x224 and 2x3x289x353 (no multiple
of 32). The RetinaNet test runs the tool itself, on a checkpoint.
"""
import copy
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from conftest import ROOT, randomize, run_tool, config_file
from mmvit.deploy import switch_to_deploy
from mmvit.export import prepare_for_export
from mmvit.export import onnx as tool
from mmvit.families import families

TOOL = osp.join(ROOT, 'tools', 'deployment', 'pytorch2onnx.py')
ATOL = 1e-4
SMALLEST = {f.backbone: f.smallest for f in families().values()}
# (batch, H, W). EfficientViT m0 at 160x224: stride-16 map 10x14 (padded
# windows), 5x7 and 3x4 (each attended as a whole); at 289x353: 19x23 and
# 10x12 (padded windows), 5x6 (whole). CMT-ti: 160 is its training height.
SIZES = [(1, 160, 224), (2, 289, 353)]


def _strong_random(model, seed=0):
    """Random weights in the regime of a trained network: ``randomize``
    (std 0.05), norm scales around 1 (around 0.1 for the norms a family
    initialises to zero, ending EfficientViT's residual branches, so that
    the maps do not grow block after block), standard-normal attention
    biases (so that the resized / gathered biases matter), then BatchNorm
    statistics measured on random images. Outputs reach a few units and
    float32 stays within about 1e-5 of float64: a well-conditioned network,
    for which a 1e-4 tolerance is a real test."""
    norm_types = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.LayerNorm,
                  torch.nn.GroupNorm)
    zero_init = {m for m in model.modules() if isinstance(m, norm_types)
                 and m.weight is not None and not m.weight.any()}
    torch.manual_seed(seed)
    randomize(model)
    batch_norms = []
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(('pos_bias.table', 'attention_biases')):
                param.normal_()
        for module in model.modules():
            if isinstance(module, norm_types):
                low = 0.05 if module in zero_init else 0.5
                module.weight.uniform_(low, 3 * low)
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.reset_running_stats()
                module.momentum = None  # a plain average over the batches
                batch_norms.append(module)
        model.eval()
        for module in batch_norms:
            module.train()
        for _ in range(2):
            model(torch.randn(2, 3, 128, 160))
        for module in batch_norms:
            # a channel almost constant on random images would amplify
            # float rounding without bound (EfficientViT's float32 outputs
            # then differ from float64 by 4e-4 rather than 3e-6)
            module.running_var.clamp_(min=0.1)
    return model.eval()


def _session(path):
    """An onnxruntime session that does not spin idle threads (they would
    slow every later test on a small machine)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    return ort.InferenceSession(str(path), options,
                                providers=['CPUExecutionProvider'])


def _run_both(model, session, batch, height, width, seed=1):
    x = torch.randn(batch, 3, height, width,
                    generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected = model(x)
    return expected, session.run(None, {'input': x.numpy()})


@pytest.fixture(scope='module', params=sorted(SMALLEST))
def exported(request, tmp_path_factory):
    name = request.param
    model = _strong_random(tool.build_backbone(name, SMALLEST[name])).eval()
    switch_to_deploy(model)
    path = str(tmp_path_factory.mktemp('onnx') / f'{name}.onnx')
    names = tool.export(model, torch.randn(1, 3, 224, 224), path)
    return name, model, path, names


def test_backbone_dynamic_export_matches_pytorch(exported):
    name, model, path, names = exported
    session = _session(path)
    assert names == [f'out{i}' for i in range(len(model.out_indices))]
    graph = onnx.load(path).graph
    assert [i.name for i in graph.input] == ['input']
    dims = graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ['batch', '', 'height', 'width']
    assert [o.name for o in graph.output] == names
    for batch, height, width in SIZES:
        expected, got = _run_both(model, session, batch, height, width)
        assert len(got) == len(expected)
        for ref, out in zip(expected, got):
            assert out.shape == tuple(ref.shape)
            # the weights give outputs large enough for 1e-4 to mean much
            assert ref.std() > 0.1, (name, float(ref.std()))
            diff = float(np.abs(out - ref.numpy()).max())
            assert diff <= ATOL, (name, (height, width), diff)


@pytest.mark.slow
def test_dynamo_exporter_keeps_efficientvit_dynamic(tmp_path):
    """The torch.export-based exporter too (EfficientViT: the family whose
    eager code branches most on the size)."""
    model = _strong_random(tool.build_backbone('EfficientViT', 'm0')).eval()
    switch_to_deploy(model)
    path = str(tmp_path / 'dynamo.onnx')
    tool.export(model, torch.randn(1, 3, 224, 224), path, exporter='dynamo')
    session = _session(path)
    for batch, height, width in SIZES:
        expected, got = _run_both(model, session, batch, height, width)
        for ref, out in zip(expected, got):
            assert out.shape == tuple(ref.shape)
            assert float(np.abs(out - ref.numpy()).max()) <= ATOL


@pytest.mark.parametrize('family,sizes', [
    ('CMT', [(160, 160), (97, 203)]),  # the training grid; odd sizes
    ('EfficientViT', [(97, 203), (40, 72)]),  # windows and whole maps
])
@pytest.mark.parametrize('deploy', [False, True], ids=['eval', 'deployed'])
def test_export_path_equals_eager_path(family, sizes, deploy):
    """The size-independent layers installed for export compute what eager
    mode computes (CMT: padding, bias always resized; EfficientViT: the
    masked single window for maps within one window), for the eval and the
    deployed structure."""
    model = _strong_random(tool.build_backbone(family,
                                               SMALLEST[family])).eval()
    if deploy:
        switch_to_deploy(model)
    exported = prepare_for_export(copy.deepcopy(model))
    replaced = {type(m).__name__ for m in exported.modules()}
    assert replaced & {'PadForPatches', 'MatrixResizedPositionBias',
                       'PaddedWindowAttention'}
    assert not replaced & {'PadToMultiple', 'LocalWindowAttention'}
    inputs = [torch.randn(1, 3, *size) for size in sizes]
    with torch.no_grad():
        eager = [model(x) for x in inputs]
        traced_path = [exported(x) for x in inputs]
    for a, b in zip(eager, traced_path):
        for x, y in zip(a, b):
            assert x.shape == y.shape
            # the project's exactness measure: max |diff| / max |eager|
            assert float((x - y).abs().max() / x.abs().max()) < 1e-4


@pytest.mark.slow
def test_retinanet_tool_exports_dense_outputs(tmp_path):
    config = osp.join(ROOT, 'configs', 'efficientvit', 'retinanet_efficientvit_m0.py')
    detector = tool.build_detector(config).eval()
    _strong_random(detector.backbone)
    checkpoint = tmp_path / 'detector.pth'
    torch.save({'state_dict': detector.state_dict()}, checkpoint)
    out = tmp_path / 'retinanet.onnx'
    proc = run_tool([TOOL, config, '--dense-outputs', '--checkpoint',
                     str(checkpoint), '--shape', '256', '320', '--out', str(out),
                     '--verify', '--verify-shape', '201', '275'])
    assert proc.stdout.count('-> OK') == 2, proc.stdout

    levels = detector.bbox_head.prior_generator.num_levels
    assert levels == len(detector.neck(detector.backbone(
        torch.zeros(1, 3, 64, 64))))
    session = _session(out)
    assert [o.name for o in session.get_outputs()] == \
        [f'out{i}' for i in range(2 * levels)]
    for height, width in ((256, 320), (201, 275)):
        x = torch.randn(1, 3, height, width)
        with torch.no_grad():
            cls_scores, bbox_preds = detector._forward(x)
        expected = list(cls_scores) + list(bbox_preds)
        got = session.run(None, {'input': x.numpy()})
        assert len(got) == len(expected) == 2 * levels
        for ref, value in zip(expected, got):
            assert value.shape == tuple(ref.shape)
            assert float(np.abs(value - ref.numpy()).max()) <= ATOL


@pytest.mark.slow
def test_dense_outputs_need_a_single_stage_detector():
    with pytest.raises(tool.ToolError, match='MaskRCNN.*single-stage.*'
                       'whole model exports'):
        tool.build_detector(osp.join(ROOT, 'configs', 'cas_vit', 'mask_rcnn_cas_vit_xs.py'))
    with pytest.raises(tool.ToolError, match='mmseg model.*single-stage'):
        tool.build_detector(osp.join(ROOT, 'configs', 'cas_vit', 'semantic_fpn_cas_vit_xs.py'))


# -- whole models, post-processing included -----------------------------------
def _toy_whole_model(config, overlay):
    """A toy-overlay model (3 classes: an untrained two-stage detector
    scores above the 0.05 threshold) with strong random weights; RetinaNet's
    class prior raised so that it detects too."""
    cfg, model = tool.build_config_model(
        config_file(config),
        overlays=[osp.join(ROOT, 'configs', '_toy_', overlay)])
    _strong_random(model.backbone)
    head = getattr(model, 'bbox_head', None)
    if head is not None:
        torch.nn.init.constant_(head.retina_cls.bias, -1.0)
    return cfg, model.eval()


@pytest.mark.slow
@pytest.mark.parametrize('config,overlay', [
    ('retinanet_efficientvit_m0.py', 'retinanet.py'),
    ('retinanet_cas_vit_xs.py', 'retinanet.py'),
    ('mask_rcnn_cmt_ti.py', 'mask_rcnn.py'),
    ('upernet_cas_vit_xs.py', 'upernet.py'),
    ('semantic_fpn_castling_vit_xs.py', 'ade.py'),
], ids=['retinanet_efficientvit', 'retinanet_cas_vit', 'mask_rcnn_cmt',
        'upernet_cas_vit', 'semantic_fpn_castling_vit'])
def test_whole_model_matches_pytorch_at_other_sizes(config, overlay,
                                                    tmp_path):
    """The deployed detector / segmentor, post-processing included, traced
    at one size: onnxruntime's boxes, scores, labels and pasted masks, or
    label maps, equal the eval model's ``predict`` on images of two other
    sizes (detectors: inputs of 96x128 and 128x96, the second padded from
    128x85; segmentors: 128x171 and 192x128)."""
    cfg, model = _toy_whole_model(config, overlay)
    deployed = switch_to_deploy(copy.deepcopy(model))
    path = str(tmp_path / 'model.onnx')
    inputs, outputs = tool.export_end_to_end(deployed, (128, 128), path)
    images = tool.synthetic_images(str(tmp_path), [(96, 128), (150, 100)])
    results = tool.verify_end_to_end(cfg, model, path, images, threads=2)
    for image, size, comparison in results:
        assert not tool.within_tolerance(comparison), (image, comparison)
        if 'count' in comparison:
            assert comparison['count'][0] > 0, comparison
            assert ('mask_pixels_differing' in comparison) == \
                ('masks' in outputs)
    assert len({size for _, size, _ in results}) == 2


@pytest.mark.slow
def test_whole_model_tool_verifies_and_times(tmp_path, capsys):
    """tools/deployment/pytorch2onnx.py CONFIG: export, --verify on
    --image files and --benchmark (PyTorch eval and deployed against
    onnxruntime, interleaved)."""
    cfg, model = _toy_whole_model('retinanet_efficientvit_m0.py',
                                  'retinanet.py')
    checkpoint = tmp_path / 'detector.pth'
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    images = tool.synthetic_images(str(tmp_path), [(90, 120)])
    out = tmp_path / 'whole.onnx'
    from conftest import run_main
    status = run_main('tools/deployment/pytorch2onnx.py', [
        'configs/efficientvit/retinanet_efficientvit_m0.py', '--overlay',
        'configs/_toy_/retinanet.py', '--checkpoint', checkpoint, '--out',
        out, '--shape', '128', '128', '--verify', '--image', images[0],
        '--benchmark', '--repeat', '2', '--threads', '2'])
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert 'inputs: input, img_shape, scale_factor; outputs: dets, labels' \
        in printed
    assert printed.count('-> OK') == 1
    for name in ('PyTorch eval', 'PyTorch deployed', 'onnxruntime'):
        assert re.search(name + r' +[\d.]+ ms', printed), printed


@pytest.mark.slow
def test_bad_arguments_fail_clearly(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, TOOL, *args],
                              capture_output=True, text=True, cwd=ROOT)

    proc = run('--backbone', 'ResNet', '--out', str(tmp_path / 'x.onnx'))
    assert proc.returncode == 2
    assert "unknown backbone 'ResNet'" in proc.stderr
    assert 'CASViT, CMT, CastlingViT, EfficientViT' in proc.stderr
    proc = run('configs/no_such_config.py')
    assert proc.returncode == 2 and 'does not exist' in proc.stderr
    proc = run('--backbone', 'CMT', '--checkpoint', 'missing.pth')
    assert proc.returncode == 2 and "'missing.pth' does not exist" in \
        proc.stderr
    assert not (tmp_path / 'x.onnx').exists()


def test_unknown_arch_fails_clearly(capsys):
    import importlib.util
    spec = importlib.util.spec_from_file_location('pytorch2onnx', TOOL)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    assert cli.main(['--backbone', 'CMT', '--arch', 'huge']) == 2
    assert "unknown arch 'huge'" in capsys.readouterr().err


def test_detection_comparison_pairs_near_ties_by_box():
    """Two detections whose scores differ by float rounding may swap ranks
    between PyTorch and onnxruntime: they are compared by box, not rank;
    a real difference of boxes is still reported."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    from mmvit.export.predictor import compare

    def sample(scores, boxes):
        data = DetDataSample()
        data.pred_instances = InstanceData(
            scores=torch.tensor(scores), labels=torch.tensor([1, 1, 2]),
            bboxes=torch.tensor(boxes, dtype=torch.float32))
        return data

    boxes = [[0, 0, 10, 10], [50, 50, 90, 90], [5, 5, 20, 20]]
    reference = sample([0.5, 0.5 + 1e-6, 0.3], boxes)
    swapped = sample([0.5 + 1e-6, 0.5, 0.3], boxes)
    result = compare(reference, swapped)
    assert result['labels_equal'] and result['max_box_diff'] == 0
    moved = sample([0.5 + 1e-6, 0.5, 0.3],
                   [[0, 0, 10, 10], [50, 50, 90, 95], [5, 5, 20, 20]])
    assert compare(reference, moved)['max_box_diff'] == 5


@pytest.mark.slow
def test_onnx_runtime_module_runs_the_graph_at_other_sizes(tmp_path):
    """The module the benchmarks time for the onnxruntime route: the
    deployed backbone exported at one size reproduces PyTorch at others."""
    model = _strong_random(tool.build_backbone('CASViT', 'xs')).eval()
    switch_to_deploy(model)
    module = tool.onnx_runtime_module(model, str(tmp_path / 'm.onnx'),
                                      torch.randn(1, 3, 96, 96), threads=1)
    for size in [(1, 3, 128, 160), (2, 3, 75, 61)]:
        x = torch.randn(*size)
        with torch.no_grad():
            expected = model(x)
        got = module(x)
        assert len(got) == len(expected)
        for a, b in zip(expected, got):
            assert b.shape == a.shape
            assert float((a - b).abs().max()) <= ATOL
