"""Every bad input gets an error that names the file, key or argument and
what would be valid, through the real tools, and leaves saved files alone."""
import glob
import hashlib
import importlib.util
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import ROOT
from test_training import CONFIG, OVERLAY, toy_options


def _run(args, env=None, timeout=300):
    """Run a tool that must fail in a process of its own; returns its stdout
    + stderr."""
    full_env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    if args[0].endswith('.sh'):
        command = ['bash'] + args
        full_env['PYTHON'] = sys.executable
    else:
        command = [sys.executable] + args
    proc = subprocess.run(command, cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    return output


def _tool(args):
    """Run ``tools/train.py`` or ``tools/test.py``'s ``main`` in this process
    (the same code as the command line, without a new interpreter); returns
    the error it stops with as the line a traceback would end with."""
    name = osp.splitext(osp.basename(args[0]))[0]
    spec = importlib.util.spec_from_file_location(
        f'_tool_{name}', osp.join(ROOT, args[0]))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        module.main(args[1:])
    except Exception as err:  # what the command line would print last
        return f'{type(err).__name__}: {err}'
    finally:
        os.chdir(cwd)
    raise AssertionError(f'{" ".join(args)} did not fail')


def _train(work_dir, data_root, *extra, options=()):
    return ['tools/train.py', CONFIG, '--overlay', OVERLAY, '--work-dir',
            str(work_dir), *extra] + toy_options(data_root, 1) + list(options)


def _last_line(output):
    return output.strip().splitlines()[-1]


def _digest(folder):
    """Name -> sha256 of every file under ``folder``."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = osp.join(root, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, folder)] = hashlib.sha256(
                    f.read()).hexdigest()
    return out


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A work dir as a training run leaves it: the toy RetinaNet's weights
    (as built, no iteration run) in ``epoch_1.pth`` with the run's config."""
    from mmvit.utils.config import build_model, load_config
    work = tmp_path_factory.mktemp('trained')
    cfg = load_config(CONFIG, [OVERLAY])
    cfg.model.backbone.init_cfg = None
    torch.save({'meta': dict(epoch=1, iter=2, cfg=cfg.pretty_text),
                'state_dict': build_model(cfg).state_dict()},
               work / 'epoch_1.pth')
    (work / 'last_checkpoint').write_text(str(work / 'epoch_1.pth'))
    cfg.dump(str(work / osp.basename(CONFIG)))
    return work


# --- configs and command lines ---------------------------------------------
def test_config_syntax_errors_name_the_file_and_line(tmp_path):
    broken = tmp_path / 'broken.py'
    broken.write_text("_base_ = ['%s']\nmodel = dict(backbone=dict(arch='s'\n"
                      % CONFIG)
    out = _run(['tools/train.py', str(broken)])
    assert f'Python syntax error in {broken}, line 2' in out, out[-2000:]
    # the error sits in a base file of the config given
    child = tmp_path / 'child.py'
    child.write_text(f"_base_ = ['{broken}']\n")
    line = _last_line(_tool(['tools/train.py', str(child)]))
    assert f"config '{child}': Python syntax error in {broken}, line 2" in \
        line, line


def test_unknown_backbone_argument_lists_the_accepted_ones(tmp_path):
    out = _tool(['tools/train.py', CONFIG, '--work-dir', str(tmp_path),
                '--cfg-options', 'model.backbone.archh=s'])
    # the registry's build error names the class and the argument
    line = _last_line(out)
    assert "CASViT.__init__() got an unexpected keyword argument 'archh'" \
        in line, line


@pytest.mark.parametrize('option,expected', [
    # torch's DataLoader and optimiser, the backbone, the tool
    ('train_dataloader.batch_size=0',
     'batch_size should be a positive integer value, but got batch_size=0'),
    ('optim_wrapper.optimizer.lr=-0.1', 'Invalid learning rate: -0.1'),
    ('model.backbone.drop_path_rate=1.5',
     'drop_path_rate=1.5: a probability in [0, 1) is allowed'),
    ('train_cfg.max_epochs=0',
     'train_cfg.max_epochs=0: an integer >= 1 is allowed'),
    ('model.backbone.out_indices=(0,7)', 'out_indices'),
    ('model.backbone.arch=huge', "'huge'"),
])
def test_out_of_range_cfg_options(toy_coco, tmp_path, option, expected):
    out = _tool(_train(tmp_path, toy_coco, options=[option]))
    assert expected in out, out[-2000:]


def test_cfg_options_that_cannot_merge_say_how_to_replace(tmp_path):
    # the toy overlay sets init_cfg=None; a sub-key cannot merge into None
    out = _tool(['tools/train.py', CONFIG, '--overlay', OVERLAY,
                '--work-dir', str(tmp_path), '--cfg-options',
                'model.backbone.init_cfg.type=Pretrained'])
    line = _last_line(out)
    assert line.startswith('TypeError: --cfg-options:') and \
        'init_cfg' in line and '_delete_=True' in line, line


def test_unwritable_work_dir(tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    out = _tool(['tools/train.py', CONFIG, '--work-dir',
                str(blocker / 'work')])
    assert f"Not a directory: '{blocker / 'work'}'" in out  # mmengine's
    assert blocker.read_text() == 'not a folder'
    if os.geteuid() != 0:  # root writes into read-only folders anyway
        locked = tmp_path / 'locked'
        locked.mkdir(mode=0o500)
        out = _tool(['tools/train.py', CONFIG, '--work-dir', str(locked)])
        assert 'Permission denied' in out and str(locked) in out


def test_launcher_pytorch_without_torchrun(tmp_path, monkeypatch):
    for name in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT',
                 'LOCAL_RANK'):
        monkeypatch.delenv(name, raising=False)
    line = _tool(['tools/train.py', CONFIG, '--work-dir', str(tmp_path),
                  '--launcher', 'pytorch'])
    # torch's (CPU, gloo) or mmengine's (GPU) error names the variable
    assert 'RANK' in line, line


@pytest.mark.parametrize('args,env,expected', [
    (['tools/dist_train.sh', CONFIG, '0'], {},
     "the number of processes per node must be a positive integer, got '0'"),
    (['tools/dist_train.sh', CONFIG, 'two'], {}, "got 'two'"),
    (['tools/dist_train.sh', CONFIG], {}, 'expected CONFIG and NPROC'),
    (['tools/dist_train.sh', 'configs/nope.py', '2'], {},
     "config file 'configs/nope.py' does not exist"),
    (['tools/dist_train.sh', CONFIG, '1'], {'NNODES': '2', 'NODE_RANK': '2'},
     "NODE_RANK must be an integer in [0, NNODES-1] = [0, 1], got '2'"),
    (['tools/dist_test.sh', CONFIG, 'ckpt.pth', '-1'], {},
     "checkpoint file 'ckpt.pth' does not exist"),
    (['tools/dist_test.sh', CONFIG, CONFIG, '-1'], {}, "got '-1'"),
])
def test_dist_scripts_check_their_arguments(args, env, expected):
    out = _run(args, env=env, timeout=60)
    assert expected in out, out
    assert 'usage' in out.lower() or 'NODE_RANK' in out


# --- checkpoints -------------------------------------------------------------
def _truncated(src, dst):
    data = open(src, 'rb').read()
    with open(dst, 'wb') as f:
        f.write(data[:len(data) // 2])
    return str(dst)


@pytest.mark.slow
def test_damaged_checkpoints_are_named(trained, toy_coco, tmp_path):
    bad = _truncated(trained / 'epoch_1.pth', tmp_path / 'half.pth')
    before = _digest(trained)
    expected = (f"cannot read checkpoint '{bad}': the file is corrupted, "
                'truncated or not a PyTorch checkpoint')
    # tools/test.py
    out = _tool(['tools/test.py', CONFIG, bad, '--overlay', OVERLAY,
                '--work-dir', str(tmp_path / 'test')] +
               toy_options(toy_coco, 1))
    assert expected in _last_line(out), _last_line(out)
    # load_from of a training run (into the trained work dir: its
    # checkpoints untouched; mmengine dumps each run's config anew)
    out = _tool(_train(trained, toy_coco, options=[f'load_from={bad}']))
    assert expected in _last_line(out), _last_line(out)
    # backbone weights (init_cfg Pretrained)
    out = _tool(_train(tmp_path / 'pre', toy_coco, options=[
        'model.backbone.init_cfg._delete_=True',
        'model.backbone.init_cfg.type=Pretrained',
        f'model.backbone.init_cfg.checkpoint={bad}']))
    assert expected in out, out[-2000:]
    after = _digest(trained)
    config = osp.basename(CONFIG)
    assert {k: v for k, v in after.items() if k in before and k != config} \
        == {k: v for k, v in before.items() if k != config}


@pytest.mark.slow
def test_weights_of_another_model_are_refused(trained, toy_coco, tmp_path):
    from mmvit.models import CASViT, CMT
    from mmvit.utils.config import build_model, load_config
    # a RetinaNet with another backbone family, saved with its config
    cfg = load_config(osp.join(ROOT, 'configs', 'cmt', 'retinanet_cmt_xs.py'),
                      [OVERLAY])
    cfg.model.backbone.init_cfg = None
    other = tmp_path / 'retinanet_cmt.pth'
    torch.save({'state_dict': build_model(cfg).state_dict(),
                'meta': dict(cfg=cfg.pretty_text)}, other)
    out = _tool(['tools/test.py', CONFIG, str(other), '--overlay', OVERLAY,
                '--work-dir', str(tmp_path / 'test')] +
               toy_options(toy_coco, 1))
    line = _last_line(out)
    assert f"checkpoint '{other}' does not fit the model of this config" in \
        line, line
    assert 'saved from a RetinaNet with backbone CMT' in line
    assert 'builds a RetinaNet with backbone CASViT' in line
    assert 'Refusing to test with randomly initialised layers' in line
    assert not glob.glob(str(tmp_path / 'test' / '*' / '*.json'))  # no
    # metrics were written: nothing was evaluated

    # as load_from of a training run: refused before any iteration
    out = _tool(_train(tmp_path / 'ft2', toy_coco,
                       options=[f'load_from={other}']))
    assert 'Refusing to train with randomly initialised layers' in \
        _last_line(out)

    # backbone weights of another family
    cmt = tmp_path / 'cmt_xs.pth'
    torch.save(CMT('xs').state_dict(), cmt)
    model = CASViT('xs', init_cfg=dict(type='Pretrained',
                                       checkpoint=str(cmt)))
    with pytest.raises(ValueError, match=r'does not fit CASViT: it provides '
                       r'\d+ of its \d+ tensors \(weights of another family'):
        model.init_weights()


# --- data ----------------------------------------------------------------------
@pytest.mark.slow
def test_missing_and_damaged_images_are_named(trained, toy_coco, tmp_path):
    data = tmp_path / 'data'
    shutil.copytree(toy_coco, data)
    ann = json.load(open(data / 'annotations' / 'instances_train2017.json'))
    missing = data / 'train2017' / ann['images'][0]['file_name']
    missing.unlink()
    out = _tool(_train(tmp_path / 'w1', str(data)))
    assert str(missing) in _last_line(out), _last_line(out)
    assert 'does not exist' in _last_line(out) or \
        'No such file' in _last_line(out)

    # a damaged image while testing
    val = json.load(open(data / 'annotations' / 'instances_val2017.json'))
    damaged = data / 'val2017' / val['images'][0]['file_name']
    damaged.write_bytes(b'\xff\xd8\xff\xe0 cut short')
    out = _tool(['tools/test.py', CONFIG, str(trained / 'epoch_1.pth'),
                '--overlay', OVERLAY, '--work-dir', str(tmp_path / 'w2')] +
               toy_options(str(data), 1))
    assert str(damaged) in _last_line(out), _last_line(out)


def test_more_processes_per_node_than_gpus(monkeypatch):
    from mmengine.config import Config

    from tools.common import setup_launcher
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '4')
    with pytest.raises(RuntimeError, match='4 processes per node were '
                       'started but this machine has 2 GPUs: pass at most 2'):
        setup_launcher(Config(), 'pytorch')
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '2')
    setup_launcher(Config(), 'pytorch')
