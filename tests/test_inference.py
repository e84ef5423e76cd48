"""Inference as users run it: demo/ scripts over the libraries' own
Inferencers on an image folder and a video, the config a training run dumps
in mmdet's Inferencer and tools, and ``tools/test.py --tta``."""
import glob
import json
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, run_main, config_file
from test_training import CONFIG, OVERLAY, toy_options

pytestmark = pytest.mark.slow  # end-to-end runs

SEG_CONFIG = osp.join(ROOT, 'configs', 'efficientvit', 'semantic_fpn_efficientvit_m0.py')
CLS_CONFIG = osp.join(ROOT, 'configs', 'efficientvit', 'imagenet_efficientvit_m0.py')
MASK_CONFIG = osp.join(ROOT, 'configs', 'efficientvit', 'mask_rcnn_efficientvit_m0.py')


def _loader_options(data_root, splits=('test', )):
    options = [f'{split}_dataloader.dataset.data_root={data_root}'
               for split in splits]
    return options + [f'{split}_dataloader.{key}={value}' for split in splits
                      for key, value in (('num_workers', 0),
                                         ('persistent_workers', False))]


@pytest.fixture(scope='module')
def trained(toy_coco, tmp_path_factory):
    """tools/train.py: the toy RetinaNet for one epoch (2 iterations);
    (work dir, the config it dumped there, its checkpoint)."""
    work = tmp_path_factory.mktemp('trained_retinanet')
    # a visualizer of its own: mmdet's configs name theirs 'visualizer', and
    # mmengine then reuses (with its log folder) the one an earlier run in
    # this process made
    run_main('tools/train.py', [CONFIG, '--overlay', OVERLAY, '--work-dir',
                                work] + toy_options(toy_coco, 1) +
             ['visualizer.name=test_inference_training'])
    dumped = work / osp.basename(CONFIG)
    assert dumped.is_file()
    return work, str(dumped), str(work / 'epoch_1.pth')


def _built_checkpoint(cfg, path):
    """A checkpoint of ``cfg``'s model as built (random weights)."""
    from mmvit.utils.config import build_model
    torch.manual_seed(0)
    torch.save({'state_dict': build_model(cfg).state_dict(),
                'meta': dict(dataset_meta=dict(cfg.get('metainfo', {})))},
               path)
    return str(path)


def test_image_demo_draws_the_inferencers_predictions(trained, toy_coco,
                                                      tmp_path):
    """demo/image_demo.py on a folder: one drawn image and one prediction
    per image, identical to what mmdet's DetInferencer itself writes; the
    boxes equal tools/test.py's for the same checkpoint."""
    from mmdet.apis import DetInferencer
    work, dumped, checkpoint = trained
    images = sorted(glob.glob(f'{toy_coco}/val2017/*.jpg'))
    out = tmp_path / 'demo'
    run_main('demo/image_demo.py', [
        f'{toy_coco}/val2017', dumped, '--weights', checkpoint, '--out-dir',
        out, '--device', 'cpu', '--pred-score-thr', '0'])
    drawn = sorted(glob.glob(str(out / 'vis' / '*.jpg')))
    preds = sorted(glob.glob(str(out / 'preds' / '*.json')))
    assert [osp.basename(p) for p in drawn] == [osp.basename(p)
                                                for p in images]
    assert len(preds) == len(images)

    library = DetInferencer(model=dumped, weights=checkpoint, device='cpu',
                            show_progress=False)
    own = tmp_path / 'library'
    expected = library(images, out_dir=str(own), no_save_pred=False,
                       pred_score_thr=0)['predictions']
    for image, prediction, path in zip(images, expected, preds):
        ours = json.load(open(path))
        assert len(ours['bboxes']) > 0
        np.testing.assert_allclose(ours['bboxes'], prediction['bboxes'],
                                   atol=1e-4)
        assert ours['labels'] == prediction['labels']
        a = np.asarray(Image.open(
            out / 'vis' / osp.basename(image)))
        b = np.asarray(Image.open(
            own / 'vis' / osp.basename(image)))
        assert np.array_equal(a, b)  # the library's own drawing
        assert not np.array_equal(a, np.asarray(Image.open(image)))

    # tools/test.py --out: the same boxes for the same image
    results = tmp_path / 'results.pkl'
    run_main('tools/test.py', [dumped, checkpoint, '--work-dir',
                               tmp_path / 'test', '--out', results,
                               '--cfg-options'] + _loader_options(
                                   toy_coco + '/'))
    tested = {osp.basename(r['img_path']): r['pred_instances']
              for r in pickle.load(open(results, 'rb'))}
    for image, prediction in zip(images, expected):
        instances = tested[osp.basename(image)]
        np.testing.assert_allclose(
            _rows(prediction['bboxes'], prediction['scores']),
            _rows(instances['bboxes'], instances['scores']), atol=1e-3)


def _rows(boxes, scores):
    """(score, box) rows in a fixed order (equal scores keep no order)."""
    rows = np.concatenate([np.asarray(scores)[:, None],
                           np.asarray(boxes)], 1)
    return rows[np.lexsort(np.round(rows, 2).T[::-1])]


def test_dumped_config_serves_upstream_inferencer_and_tools(trained,
                                                            toy_coco,
                                                            tmp_path):
    """A script that never imports mmvit: DetInferencer on the dumped
    config predicts what mmvit's own call predicts; mmdet's
    browse_dataset, confusion_matrix and analyze_logs run on that
    config, its test results and its training log."""
    from mmvit.apis.inference import init_inferencer
    work, dumped, checkpoint = trained
    image = sorted(glob.glob(f'{toy_coco}/val2017/*.jpg'))[0]
    expected = init_inferencer(dumped, checkpoint, 'cpu')(
        image, pred_score_thr=0.2)['predictions'][0]
    results = tmp_path / 'results.pkl'
    run_main('tools/test.py', [dumped, checkpoint, '--work-dir',
                               tmp_path / 'test', '--out', results,
                               '--cfg-options'] + _loader_options(
                                   toy_coco + '/'))
    log = glob.glob(str(work / '*' / 'vis_data' / 'scalars.json'))[0]
    tools = osp.join(osp.dirname(__import__('mmdet').__file__), '.mim',
                     'tools', 'analysis_tools')
    script = f'''
import json, runpy, sys
from mmdet.apis import DetInferencer
inferencer = DetInferencer(model={dumped!r}, weights={checkpoint!r},
                           device='cpu', show_progress=False)
result = inferencer({image!r}, pred_score_thr=0.2)['predictions'][0]
print('PREDICTION ' + json.dumps(result))
for tool, args in [
        ('browse_dataset.py', [{dumped!r}, '--not-show', '--output-dir',
                               {str(tmp_path / 'browse')!r}]),
        ('confusion_matrix.py', [{dumped!r}, {str(results)!r},
                                 {str(tmp_path / 'matrix')!r}]),
        ('analyze_logs.py', ['plot_curve', {log!r}, '--keys', 'loss',
                             '--out', {str(tmp_path / 'loss.png')!r}])]:
    sys.argv = [tool] + args
    runpy.run_path({tools!r} + '/' + tool, run_name='__main__')
print('imported mmvit:', 'mmvit.apis' in sys.modules)
'''
    proc = subprocess.run([sys.executable, '-c', script], cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=300,
                          env={'PATH': '/usr/bin:/bin', 'MPLBACKEND': 'Agg'})
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [x for x in proc.stdout.splitlines()
            if x.startswith('PREDICTION ')][0]
    upstream = json.loads(line[len('PREDICTION '):])
    np.testing.assert_allclose(upstream['bboxes'], expected['bboxes'],
                               atol=1e-4)
    assert upstream['labels'] == expected['labels']
    assert len(glob.glob(str(tmp_path / 'browse' / '*'))) == 8  # train set
    assert (tmp_path / 'matrix' / 'confusion_matrix.png').is_file()
    assert (tmp_path / 'loss.png').is_file()


def test_video_demo_writes_every_frame(trained, toy_coco, tmp_path):
    import cv2
    _, dumped, checkpoint = trained
    video = str(tmp_path / 'in.mp4')
    frames = [cv2.imread(p) for p in
              sorted(glob.glob(f'{toy_coco}/val2017/*.jpg'))] * 2
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*'mp4v'), 5,
                             frames[0].shape[1::-1])
    for frame in frames:
        writer.write(frame)
    writer.release()
    out = str(tmp_path / 'out.mp4')
    assert run_main('demo/video_demo.py', [
        video, dumped, '--weights', checkpoint, '--out', out, '--device',
        'cpu', '--batch-size', '3', '--deploy']) == len(frames)
    reader = cv2.VideoCapture(out)
    count = 0
    while reader.read()[0]:
        count += 1
    assert count == len(frames)


def test_segmentation_and_classification_demos(toy_ade, toy_imagenet,
                                               tmp_path):
    """One process, two libraries: MMSegInferencer then
    ImageClassificationInferencer (the second one used to fail on the
    scope the first left behind); the demo's files are the Inferencers'
    predictions."""
    from mmvit.apis.inference import init_inferencer, load_inference_config
    cls = load_inference_config(CLS_CONFIG, [osp.join(
        ROOT, 'configs', '_toy_', 'imagenet.py')])
    cls_ckpt = _built_checkpoint(cls, tmp_path / 'cls.pth')
    seg = load_inference_config(SEG_CONFIG, [osp.join(
        ROOT, 'configs', '_toy_', 'ade.py')], dict(
            test_dataloader=dict(dataset=dict(data_root=toy_ade))))
    seg_ckpt = _built_checkpoint(seg, tmp_path / 'seg.pth')  # mmseg scope
    seg_images = f'{toy_ade}/images/validation'
    run_main('demo/image_demo.py', [
        seg_images, SEG_CONFIG, '--weights', seg_ckpt, '--overlay',
        'configs/_toy_/ade.py', '--out-dir', tmp_path / 'seg', '--device',
        'cpu'])
    names = sorted(osp.splitext(f)[0] for f in
                   map(osp.basename, glob.glob(seg_images + '/*.jpg')))
    maps = sorted(glob.glob(str(tmp_path / 'seg' / 'preds' / '*.png')))
    assert [osp.splitext(osp.basename(m))[0] for m in maps] == names
    assert len(glob.glob(str(tmp_path / 'seg' / 'vis' / '*'))) == len(names)
    library = init_inferencer(seg, seg_ckpt, 'cpu')
    first = sorted(glob.glob(seg_images + '/*.jpg'))[0]
    expected = library(first)['predictions']
    saved = np.asarray(Image.open(maps[0]))
    assert np.array_equal(saved, expected)

    cls_images = sorted(glob.glob(f'{toy_imagenet}/val/**/*.*',
                                  recursive=True))[:3]
    folder = tmp_path / 'cls_in'
    folder.mkdir()
    for path in cls_images:
        (folder / osp.basename(path)).write_bytes(open(path, 'rb').read())
    run_main('demo/image_demo.py', [
        folder, CLS_CONFIG, '--weights', cls_ckpt, '--overlay',
        'configs/_toy_/imagenet.py', '--out-dir', tmp_path / 'cls',
        '--device', 'cpu', '--deploy'])
    preds = sorted(glob.glob(str(tmp_path / 'cls' / 'preds' / '*.json')))
    assert len(preds) == 3
    assert len(glob.glob(str(tmp_path / 'cls' / 'vis' / '*.png'))) == 3
    classifier = init_inferencer(cls, cls_ckpt, 'cpu')
    result = classifier(str(folder / osp.basename(cls_images[0])))[0]
    saved = json.load(open(preds[0]))
    assert saved['pred_label'] == result['pred_label']
    assert saved['pred_class'] in ('circle', 'square', 'triangle', 'cross')
    np.testing.assert_allclose(saved['pred_scores'], result['pred_scores'],
                               atol=1e-5)


def test_weights_of_another_model_are_refused(trained, tmp_path):
    from mmvit.apis.inference import init_inferencer, load_inference_config
    _, dumped, _ = trained
    other = _built_checkpoint(load_inference_config(SEG_CONFIG),
                              tmp_path / 'seg.pth')
    with pytest.raises(RuntimeError, match='does not fit.*Refusing to run '
                       'inference'):
        init_inferencer(dumped, other, 'cpu')


# -- test-time augmentation ---------------------------------------------------
def _test_with_and_without_tta(config, checkpoint, tmp_path, options,
                               suffix='.pkl', overlay=None):
    """tools/test.py --out without and with --tta; {tta: output path}."""
    outs = {}
    for tta in (False, True):
        outs[tta] = tmp_path / f'tta_{tta}{suffix}'
        run_main('tools/test.py', [
            config, checkpoint, '--work-dir', tmp_path / f'work_{tta}',
            '--out', outs[tta], *(['--tta'] if tta else []),
            *(['--overlay', overlay] if overlay else []), '--cfg-options'] +
            options)
    return outs


@pytest.mark.parametrize('kind', ['retinanet', 'mask_rcnn'])
def test_tta_detection(kind, trained, toy_coco, tmp_path):
    """--tta runs mmdet's DetTTAModel (Mask R-CNN: masks merged too) over
    three scales and flips; the predictions change."""
    from mmvit.apis.inference import load_inference_config
    # one image: TTA's six passes at up to 2000x1200 dominate the cost
    options = _loader_options(toy_coco + '/') + [
        f'test_evaluator.ann_file={toy_coco}/annotations/'
        'instances_val2017.json', 'test_dataloader.dataset.indices=1']
    if kind == 'retinanet':
        _, config, checkpoint = trained
    else:
        overlay = osp.join(ROOT, 'configs', '_toy_', 'mask_rcnn.py')
        cfg = load_inference_config(MASK_CONFIG, [overlay])
        config = str(tmp_path / 'mask_rcnn.py')
        cfg.dump(config)
        checkpoint = _built_checkpoint(cfg, tmp_path / 'mask_rcnn.pth')
    runs = {tta: pickle.load(open(out, 'rb')) for tta, out in
            _test_with_and_without_tta(config, checkpoint, tmp_path,
                                       options).items()}
    plain, augmented = runs[False][0], runs[True][0]
    assert plain['img_path'] == augmented['img_path']
    a, b = plain['pred_instances'], augmented['pred_instances']
    assert len(b['bboxes']) > 0
    assert len(a['bboxes']) != len(b['bboxes']) or not torch.allclose(
        a['bboxes'], b['bboxes'])
    if kind == 'mask_rcnn':
        assert len(b['masks']) == len(b['bboxes'])
        # the demo draws and saves the masks (RLE in the JSON)
        run_main('demo/image_demo.py', [
            plain['img_path'], config, '--weights', checkpoint,
            '--out-dir', tmp_path / 'demo', '--device', 'cpu'])
        saved, = glob.glob(str(tmp_path / 'demo' / 'preds' / '*.json'))
        saved = json.load(open(saved))
        assert len(saved['masks']) == len(saved['bboxes']) > 0
        assert {'size', 'counts'} <= set(saved['masks'][0])


def test_tta_segmentation_and_classification(toy_ade, toy_imagenet,
                                             tmp_path):
    from mmvit.apis.inference import load_inference_config
    seg_overlay = osp.join(ROOT, 'configs', '_toy_', 'ade.py')
    checkpoint = _built_checkpoint(load_inference_config(
        SEG_CONFIG, [seg_overlay]), tmp_path / 'seg.pth')
    outs = _test_with_and_without_tta(
        SEG_CONFIG, checkpoint, tmp_path / 'seg', _loader_options(toy_ade),
        suffix='', overlay=seg_overlay)
    maps = {tta: [np.asarray(Image.open(p)) for p in
                  sorted(glob.glob(str(out / '*.png')))]
            for tta, out in outs.items()}
    assert len(maps[True]) == len(maps[False]) > 0
    assert any(not np.array_equal(a, b)
               for a, b in zip(maps[False], maps[True]))

    cls_overlay = osp.join(ROOT, 'configs', '_toy_', 'imagenet.py')
    checkpoint = _built_checkpoint(load_inference_config(
        CLS_CONFIG, [cls_overlay]), tmp_path / 'cls.pth')
    outs = _test_with_and_without_tta(
        CLS_CONFIG, checkpoint, tmp_path / 'cls',
        _loader_options(toy_imagenet), overlay=cls_overlay)
    scores = {tta: torch.stack([r['pred_score'] for r in
                                pickle.load(open(out, 'rb'))])
              for tta, out in outs.items()}
    assert scores[True].shape == scores[False].shape
    assert not torch.allclose(scores[True], scores[False])


@pytest.mark.parametrize('config', [
    'retinanet_efficientvit_m1.py', 'mask_rcnn_castling_vit_xs.py',
    'semantic_fpn_cas_vit_xs.py', 'upernet_efficientvit_m0.py',
    'imagenet_cmt_ti.py'])
def test_configs_run_in_their_inferencer(config, tmp_path):
    """Each head's real config (its full-size test pipeline) in the
    library's Inferencer, random weights: one prediction of the task's
    kind; Mask R-CNN's carry masks."""
    from demo.image_demo import infer_images
    from mmvit.apis.inference import init_inferencer
    from mmvit.export.onnx import synthetic_images
    image = synthetic_images(str(tmp_path), [(120, 160)])[0]
    inferencer = init_inferencer(config_file(config),
                                 device='cpu')
    out = tmp_path / 'out'
    prediction, = infer_images(inferencer, image, str(out),
                               pred_score_thr=0.0)
    assert len(glob.glob(str(out / 'vis' / '*'))) == 1
    assert len(glob.glob(str(out / 'preds' / '*'))) == 1
    if config.startswith(('retinanet', 'mask_rcnn')):
        assert len(prediction['bboxes']) == len(prediction['scores'])
        if config.startswith('mask_rcnn'):
            assert len(prediction['masks']) == len(prediction['bboxes'])
    elif config.startswith('imagenet'):
        assert len(prediction['pred_scores']) == 1000
    else:
        assert prediction.shape == (120, 160)
        assert prediction.max() < 150


def test_mask_tta_merges_boxes_and_their_masks():
    """Two views of a 6x8 image, the second flipped: the flipped view's
    box and mask are mapped back, NMS merges the two copies of the same
    object, and every kept detection keeps its own mask."""
    from mmdet.structures import DetDataSample
    from mmengine.config import ConfigDict
    from mmengine.structures import InstanceData

    from mmvit.models.tta import MaskDetTTAModel
    class Detector(torch.nn.Module):  # merge_preds needs no detector

        def test_step(self, data):
            return data

    model = MaskDetTTAModel(module=Detector(), tta_cfg=ConfigDict(
        nms=dict(type='nms', iou_threshold=0.5), max_per_img=10))
    mask = torch.zeros(6, 8, dtype=torch.bool)
    mask[1:4, 0:3] = True  # the object, at the left
    other = torch.zeros(6, 8, dtype=torch.bool)
    other[4:6, 5:8] = True

    def view(flip, boxes, scores, masks):
        sample = DetDataSample(metainfo=dict(
            ori_shape=(6, 8), flip=flip, flip_direction='horizontal'))
        sample.pred_instances = InstanceData(
            bboxes=torch.tensor(boxes, dtype=torch.float32),
            scores=torch.tensor(scores), labels=torch.tensor([0] * len(
                scores)), masks=torch.stack(masks))
        return sample

    plain = view(False, [[0, 1, 3, 4], [5, 4, 8, 6]], [0.9, 0.6],
                 [mask, other])
    flipped = view(True, [[5, 1, 8, 4]], [0.8], [mask.flip(-1)])
    merged = model.merge_preds([[plain, flipped]])[0].pred_instances
    assert merged.scores.tolist() == pytest.approx([0.9, 0.6])
    assert torch.equal(merged.masks[0], mask)
    assert torch.equal(merged.masks[1], other)
    alone = model.merge_preds([[view(True, [[5, 1, 8, 4]], [0.8],
                                      [mask.flip(-1)])]])[0].pred_instances
    assert alone.bboxes.tolist() == [[0, 1, 3, 4]]
    assert torch.equal(alone.masks[0], mask)


def test_onnxruntime_backend_of_test_tool_and_demo(trained, toy_coco,
                                                   tmp_path):
    """tools/test.py --backend onnxruntime exports the deployed whole model
    of a .pth checkpoint and evaluates it with the config's own loop and
    metric: the same boxes and scores as the PyTorch run, the same COCO
    AP; demo/image_demo.py --onnx draws that graph's predictions."""
    import re
    work, dumped, checkpoint = trained
    options = ['--cfg-options'] + _loader_options(toy_coco + '/')
    runs = {}
    for backend in ('pytorch', 'onnxruntime'):
        folder = tmp_path / backend
        proc = subprocess.run(
            [sys.executable, 'tools/test.py', dumped, checkpoint,
             '--work-dir', str(folder), '--out', str(folder / 'out.pkl'),
             '--backend', backend] + options,
            cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        printed = proc.stdout + proc.stderr
        runs[backend] = (
            float(re.search(r'coco/bbox_mAP_50: ([\d.-]+)', printed)[1]),
            {osp.basename(r['img_path']): r['pred_instances'] for r in
             pickle.load(open(folder / 'out.pkl', 'rb'))})
    graph = tmp_path / 'onnxruntime' / (osp.splitext(
        osp.basename(dumped))[0] + '.onnx')
    assert graph.is_file()
    assert runs['pytorch'][0] == runs['onnxruntime'][0]
    torch_boxes, ort_boxes = runs['pytorch'][1], runs['onnxruntime'][1]
    assert sorted(torch_boxes) == sorted(ort_boxes)
    assert sum(len(p['scores']) for p in torch_boxes.values()) > 0
    for name, expected in torch_boxes.items():
        got = ort_boxes[name]
        np.testing.assert_allclose(
            _rows(expected['bboxes'], expected['scores']),
            _rows(got['bboxes'], got['scores']), atol=1e-3)

    out = tmp_path / 'demo'
    run_main('demo/image_demo.py', [
        f'{toy_coco}/val2017', dumped, '--onnx', str(graph), '--out-dir',
        out, '--device', 'cpu', '--pred-score-thr', '0'])
    preds = sorted(glob.glob(str(out / 'preds' / '*.json')))
    assert len(preds) == len(torch_boxes)
    for path in preds:
        ours = json.load(open(path))
        expected = torch_boxes[osp.splitext(osp.basename(path))[0] + '.jpg']
        np.testing.assert_allclose(
            _rows(ours['bboxes'], ours['scores']),
            _rows(expected['bboxes'], expected['scores']), atol=1e-3)
