"""What a careless user meets, through the real tools: an empty image, a
file that is not a video, two runs in one work dir, a deployed checkpoint
with the training config (and the reverse), annotations the data set skips,
a num_classes that does not fit, a relative --show-dir."""
import glob
import json
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, randomize
from test_bad_input import _digest, _run, _tool, _train
from test_training import CONFIG, OVERLAY, toy_options


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """The toy RetinaNet's weights (random), saved as a training run does."""
    from mmvit.utils.config import build_model, load_config
    work = tmp_path_factory.mktemp('ckpt')
    cfg = load_config(CONFIG, [OVERLAY])
    cfg.model.backbone.init_cfg = None
    path = work / 'epoch_1.pth'
    torch.save({'state_dict': randomize(build_model(cfg)).state_dict(),
                'meta': dict(cfg=cfg.pretty_text)}, path)
    return str(path)


def _copy(toy_coco, tmp_path):
    data = tmp_path / 'data'
    shutil.copytree(toy_coco, data)
    return data


@pytest.mark.slow
def test_an_empty_image_is_named_from_a_dataloader_worker(
        toy_coco, checkpoint, tmp_path):
    data = _copy(toy_coco, tmp_path)
    val = json.load(open(data / 'annotations' / 'instances_val2017.json'))
    empty = data / 'val2017' / val['images'][1]['file_name']
    empty.write_bytes(b'')
    options = [o.replace('test_dataloader.num_workers=0',
                         'test_dataloader.num_workers=1')
               for o in toy_options(str(data), 1)]
    line = _tool(['tools/test.py', CONFIG, checkpoint, '--overlay', OVERLAY,
                  '--work-dir', str(tmp_path / 'w')] + options)
    assert line == (
        'ValueError: test_dataloader.dataset (listed in '
        f"{data}/annotations/instances_val2017.json): image '{empty}' cannot "
        'be decoded: the file is empty (0 bytes); restore it or remove it '
        'from the dataset'), line


@pytest.mark.slow
def test_video_demo_refuses_a_file_that_is_not_a_video(tmp_path):
    fake = tmp_path / 'notes.mp4'
    fake.write_text('not a video\n')
    out = tmp_path / 'out.mp4'
    config = osp.join(ROOT, 'configs', 'efficientvit',
                      'retinanet_efficientvit_m0.py')
    text = _run(['demo/video_demo.py', str(fake), config, '--out', str(out),
                 '--device', 'cpu'])  # asserts a non-zero exit
    assert f"video '{fake}' cannot be read as a video" in text, text[-2000:]
    assert not out.exists()


def test_work_dir_lock_refuses_a_live_holder_and_takes_over_a_dead_one(
        tmp_path, capsys):
    from tools.common import work_dir_lock
    lock = tmp_path / '.mmvit.lock'
    host = socket.gethostname()
    sleeper = subprocess.Popen([sys.executable, '-c',
                                'import time; time.sleep(60)'])
    try:
        lock.write_text(f'{sleeper.pid} {host}\n')
        with pytest.raises(RuntimeError, match=(
                rf"work dir '{tmp_path}' is in use by another run \(process "
                rf'{sleeper.pid} on {host}, lock file .*\.mmvit\.lock\): wait '
                'for it to finish or pass another --work-dir')):
            with work_dir_lock(str(tmp_path)):
                pass
        assert lock.read_text() == f'{sleeper.pid} {host}\n'  # kept
        # through the tool: refused before anything is built or written
        before = _digest(tmp_path)
        line = _tool(['tools/train.py', CONFIG, '--work-dir', str(tmp_path)])
        assert 'is in use by another run' in line, line
        assert _digest(tmp_path) == before
    finally:
        sleeper.kill()
        sleeper.wait()
    # the holder is gone: its lock is taken over, then released
    with work_dir_lock(str(tmp_path)):
        assert lock.read_text() == f'{os.getpid()} {host}\n'
    assert 'taking over the lock of process' in capsys.readouterr().err
    assert not lock.exists()
    # another host's lock cannot be checked: refused, with what to do
    lock.write_text('4242 elsewhere\n')
    with pytest.raises(RuntimeError, match='remove the lock file if that run '
                       'is gone'):
        with work_dir_lock(str(tmp_path)):
            pass


@pytest.mark.slow
def test_deployed_checkpoint_and_training_config_say_deployed(
        toy_coco, checkpoint, tmp_path):
    """A deployed checkpoint tested with the training structure (and the
    reverse) is refused with a message that says so and gives the option;
    with it, the test runs and --show-dir vis lands under the work dir."""
    from tools.deployment.deploy_checkpoint import main as deploy
    deployed = str(tmp_path / 'deployed.pth')
    deploy([CONFIG, checkpoint, deployed, '--overlay', OVERLAY])
    test = ['tools/test.py', CONFIG, deployed, '--overlay', OVERLAY,
            '--work-dir', str(tmp_path / 'w1')] + toy_options(toy_coco, 1)
    line = _tool(test)
    assert 'It is a deployed checkpoint (folded layers) and this config ' \
        'builds the training structure: add --cfg-options ' \
        'model.backbone.deploy=True.' in line, line
    assert not glob.glob(str(tmp_path / 'w1' / '*' / '*.json'))  # no metrics
    reverse = ['tools/test.py', CONFIG, checkpoint, '--overlay', OVERLAY,
               '--work-dir', str(tmp_path / 'w2')] + toy_options(
                   toy_coco, 1) + ['model.backbone.deploy=True']
    line = _tool(reverse)
    assert 'This config builds the deployed structure (model.backbone.' \
        'deploy=True) and the file is not a deployed checkpoint' in line, line
    assert 'saved from a RetinaNet with backbone CASViT; this config ' \
        'builds a RetinaNet with backbone CASViT' in line  # one naming

    from conftest import run_main
    work = tmp_path / 'w3'
    run_main('tools/test.py', [CONFIG, deployed, '--overlay', OVERLAY,
                               '--work-dir', work, '--show-dir', 'vis'] +
             toy_options(toy_coco, 1) + ['model.backbone.deploy=True'])
    drawn = glob.glob(str(work / '*' / 'vis' / '*.jpg'))
    assert len(drawn) == 4, os.listdir(work)
    assert not osp.exists(osp.join(ROOT, 'vis'))


def _broken_annotations(toy_coco, tmp_path):
    """The toy set with one annotation of each kind CocoDataset skips."""
    data = _copy(toy_coco, tmp_path)
    path = data / 'annotations' / 'instances_train2017.json'
    coco = json.load(open(path))
    first, last = coco['annotations'][0], max(
        a['id'] for a in coco['annotations'])
    coco['annotations'] += [
        dict(first, id=last + 1, category_id=99),            # unknown
        dict(first, id=last + 2, bbox=[5, 5, 0, 9], area=0),  # degenerate
        dict(first, id=last + 3, bbox=[900, 900, 9, 9])]      # outside
    json.dump(coco, open(path, 'w'))
    return data


def test_check_dataset_reports_what_the_data_set_skips(toy_coco, tmp_path,
                                                     capsys):
    from conftest import run_main
    data = _broken_annotations(toy_coco, tmp_path)
    args = [CONFIG, '--overlay', OVERLAY] + toy_options(str(data), 1)
    assert run_main('tools/analysis/check_dataset.py', args) == 1
    out = capsys.readouterr().out
    report = out.split('val_dataloader')[0]
    for reason in ('box outside the image', 'degenerate box',
                   'unknown category'):
        assert f'skipped by the data set: 1 ({reason})' in report, out
    assert 'images: 8 ' in report and 'instances of circle: ' in report
    assert '3 problem(s) found' in out
    # the model's num_classes against the data set's classes
    assert run_main('tools/analysis/check_dataset.py', [
        CONFIG, '--overlay', OVERLAY] + toy_options(toy_coco, 1) +
        ['model.bbox_head.num_classes=5']) == 1
    out = capsys.readouterr().out
    assert 'model.bbox_head.num_classes=5 but the data set has 3 classes' \
        in out, out
    assert run_main('tools/analysis/check_dataset.py', [
        CONFIG, '--overlay', OVERLAY] + toy_options(toy_coco, 1)) == 0


@pytest.mark.slow
def test_training_warns_of_skipped_annotations_and_stops_on_num_classes(
        toy_coco, tmp_path):
    data = _broken_annotations(toy_coco, tmp_path)
    line = _tool(_train(tmp_path / 'w1', str(data),
                        options=['model.bbox_head.num_classes=5']))
    assert line == (
        'ValueError: model.bbox_head.num_classes=5 but the training set has '
        "3 classes ('circle', 'square', 'triangle'): set model.bbox_head."
        "num_classes=3 (or the data set's metainfo classes)"), line
    assert not glob.glob(str(tmp_path / 'w1' / '*.pth'))
    proc = subprocess.run(
        [sys.executable, 'tools/train.py', CONFIG, '--overlay', OVERLAY,
         '--work-dir', str(tmp_path / 'w2')] + toy_options(str(data), 1),
        cwd=ROOT, capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'DatasetCheckHook: the training set skipped 3 of ' in \
        proc.stdout + proc.stderr
