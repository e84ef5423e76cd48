"""Non-finite losses, bad data and configs, hostile checkpoints (hard
kills and resume: tests/test_faults.py)."""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from conftest import ROOT, make_runner, run_tool, use_toy_coco
from mmvit.utils import read_checkpoint
from mmvit.utils.config import load_config
from tools.common import explain
from test_training import CONFIG, OVERLAY, toy_options


@pytest.mark.slow
def test_non_finite_loss_stops_with_a_clear_error(toy_coco, tmp_path):
    cfg = load_config(CONFIG, [OVERLAY])
    use_toy_coco(cfg, toy_coco)
    cfg.train_dataloader.batch_size = 2
    cfg.train_cfg.max_epochs = 1
    cfg.train_cfg.val_interval = 5
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                        by_epoch=False, interval=1)
    runner = make_runner(cfg, tmp_path)
    calls = []

    def poison(module, args, outputs):
        calls.append(1)
        if len(calls) == 3:  # the third iteration's forward
            return tuple(o * float('nan') for o in outputs)

    runner.model.backbone.register_forward_hook(poison)
    with pytest.raises(FloatingPointError,
                       match=r'Non-finite loss at iteration 3 .*loss_cls=nan'):
        runner.train()
    assert (tmp_path / 'iter_2.pth').is_file()
    assert not (tmp_path / 'iter_3.pth').exists()
    state = read_checkpoint(tmp_path / 'iter_2.pth')['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values()
               if v.is_floating_point())


# --- bad data --------------------------------------------------------------
def _coco_cfg(data_root):
    cfg = load_config(CONFIG, [OVERLAY])
    return use_toy_coco(cfg, data_root)


def _train_fails(toy_coco, tmp_path, *options):
    """The last line ``tools/train.py`` fails with on the toy data."""
    with pytest.raises(AssertionError) as info:
        run_tool(['tools/train.py', CONFIG, '--overlay', OVERLAY,
                  '--work-dir', str(tmp_path / 'w')] +
                 toy_options(toy_coco, 1) + list(options))
    return str(info.value)


@pytest.mark.slow
def test_annotation_file_errors_name_the_file(toy_coco, tmp_path):
    # a missing file: pycocotools' own error names it
    out = _train_fails(toy_coco, tmp_path, 'train_dataloader.dataset.'
                       'ann_file=annotations/nope.json')
    assert "No such file or directory: '" in out and 'nope.json' in out
    # unparsable, image-less: the run's error is explained
    broken = tmp_path / 'broken.json'
    broken.write_text('{"images": [')
    empty = tmp_path / 'empty.json'
    empty.write_text(json.dumps({'images': [], 'annotations': [],
                                 'categories': []}))
    cfg = _coco_cfg(toy_coco)
    cfg.train_dataloader.dataset.ann_file = str(broken)
    assert str(explain(ValueError('x'), cfg)).startswith(
        f"train_dataloader.dataset: annotation file '{broken}' is not valid "
        'JSON (')
    cfg.train_dataloader.dataset.ann_file = str(empty)
    assert str(explain(ValueError('need at least one array'), cfg)) == (
        f"train_dataloader.dataset: annotation file '{empty}' lists no "
        'images (empty dataset)')
    cfg.train_dataloader.dataset.ann_file = 'annotations/' \
        'instances_train2017.json'
    assert explain(ValueError('unrelated'), cfg) is None  # good data
    out = _train_fails(toy_coco, tmp_path, 'train_dataloader.dataset.'
                       f'ann_file={empty}')
    assert 'empty.json\' lists no images' in out, out[-1500:]


def test_empty_segmentation_folder(toy_ade, tmp_path):
    cfg = load_config(osp.join(ROOT, 'configs', 'cas_vit', 'semantic_fpn_cas_vit_xs.py'),
                      [osp.join(ROOT, 'configs', '_toy_', 'ade.py')])
    for loader in ('train', 'val', 'test'):
        cfg[f'{loader}_dataloader'].dataset.data_root = toy_ade + '/'
    assert explain(ValueError('x'), cfg) is None  # the good data
    (tmp_path / 'images' / 'training').mkdir(parents=True)
    cfg.train_dataloader.dataset.data_root = str(tmp_path)
    # mmseg's own error: "need at least one array to concatenate"
    error = explain(ValueError('need at least one array to concatenate'),
                    cfg)
    assert str(error).startswith('train_dataloader.dataset: empty dataset: '
                                 'no image files under') and \
        'images/training' in str(error), error


def _load(path):
    from mmcv.transforms import LoadImageFromFile
    return LoadImageFromFile()(dict(img_path=str(path)))


def test_corrupted_image_names_the_file(tmp_path):
    path = tmp_path / 'broken.jpg'
    path.write_bytes(b'\xff\xd8\xff\xe0 not really a jpeg')
    with pytest.raises(AssertionError, match=r'failed to load image: .*'
                       r'broken.jpg'):
        _load(path)


def test_grayscale_and_rgba_images_load_as_three_channels(tmp_path):
    gray = np.random.randint(0, 255, (20, 30), np.uint8)
    rgba = np.random.randint(0, 255, (20, 30, 4), np.uint8)
    cv2.imwrite(str(tmp_path / 'gray.png'), gray)
    cv2.imwrite(str(tmp_path / 'rgba.png'), rgba)
    for name in ('gray.png', 'rgba.png'):
        img = _load(tmp_path / name)['img']
        assert img.shape == (20, 30, 3), name
    assert np.array_equal(_load(tmp_path / 'gray.png')['img'][..., 1], gray)


@pytest.mark.slow
def test_unknown_backbone_type_names_the_type(tmp_path):
    # mmengine's registry error, through the tool
    with pytest.raises(AssertionError, match='mmvit.NoSuchViT is not in the '
                       'mmdet::model registry'):
        run_tool(['tools/train.py', CONFIG, '--work-dir', str(tmp_path),
                  '--cfg-options', 'model.backbone.type=mmvit.NoSuchViT'])


# --- checkpoints from strangers --------------------------------------------
class _RunsCode:
    """Unpickling this would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


class _GetsAttr:
    """Unpickling this would fetch HistoryBuffer.__init__ via getattr."""

    def __reduce__(self):
        from mmengine.logging import HistoryBuffer
        return getattr, (HistoryBuffer, '__init__')


@pytest.mark.slow
def test_malicious_checkpoints_are_refused(toy_coco, tmp_path):
    from mmvit.models import CASViT
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'backbone.x': torch.zeros(1)},
                'meta': _RunsCode(marker)}, evil)
    sneaky = tmp_path / 'sneaky.pth'
    torch.save({'state_dict': {}, 'meta': _GetsAttr()}, sneaky)
    for path in (evil, sneaky):
        with pytest.raises(RuntimeError, match='refused to load checkpoint '
                           '.*would execute code'):
            read_checkpoint(path)
    # as backbone weights
    model = CASViT('xs', init_cfg=dict(type='Pretrained',
                                       checkpoint=str(evil)))
    with pytest.raises(RuntimeError, match='refused to load'):
        model.init_weights()
    # as the checkpoint of tools/test.py (mmengine's loader, load_from)
    with pytest.raises(AssertionError, match='refused to load checkpoint '
                       '.*would execute code'):
        run_tool(['tools/test.py', CONFIG, str(evil), '--overlay', OVERLAY,
                  '--work-dir', str(tmp_path / 'w')] +
                 toy_options(toy_coco, 1))
    assert not marker.exists()  # nothing it would do happened
