"""mmvit as an installed OpenMMLab package: version checks, the model
index API, configs by ``mmvit::`` name, the wheel's contents, the
environment report."""
import os
import os.path as osp
import shutil
import subprocess
import sys
import zipfile

import pytest
import torch

import mmvit
from conftest import ROOT
from mmvit.families import families
from mmvit.utils.version_check import check_versions

GOOD = {'mmengine': '0.10.7', 'mmcv': '2.1.0', 'mmdet': '3.3.0',
        'mmsegmentation': '1.2.2', 'mmpretrain': '1.2.0'}


def test_version_check_names_installed_and_required():
    check_versions(GOOD)
    check_versions({'mmengine': '0.10.7', 'mmcv': '2.1.0'})  # optional ones
    with pytest.raises(ImportError, match=r'mmcv==2\.2\.0 is installed, but '
                       r'mmvit needs mmcv>=2\.0\.0, <2\.2\.0'):
        check_versions(dict(GOOD, mmcv='2.2.0'))
    with pytest.raises(ImportError, match=r'mmdet==2\.28\.2 is installed.*'
                       r'mmdet>=3\.0\.0, <3\.4\.0'):
        check_versions(dict(GOOD, mmdet='2.28.2'))
    with pytest.raises(ImportError, match='mmengine is not installed'):
        check_versions(dict(GOOD, mmengine=None))


def test_list_models_covers_the_index():
    names = mmvit.list_models()
    for fam in families().values():
        for variant in fam.variants:
            for name in (f'{fam.key}_{variant}', f'{fam.key}_{variant}_in1k',
                         f'retinanet_{fam.key}_{variant}',
                         f'upernet_{fam.key}_{variant}'):
                assert name in names
    assert mmvit.list_models('retinanet_efficientvit_m[01]') == \
        ['retinanet_efficientvit_m0', 'retinanet_efficientvit_m1']
    info = mmvit.model_info('cmt_s')
    assert info['kind'] == 'backbone' and info['strides'] == [4, 8, 16, 32]
    assert info['results']['imagenet']['Top 1 Accuracy'] == 83.5
    assert info['weights'].endswith('/release-v1/cmt_small.pth')
    assert mmvit.model_info('mask_rcnn_cas_vit_s')['results']['COCO'] == \
        {'box AP': 39.8, 'mask AP': 36.7}


@pytest.mark.parametrize('fam', list(families().values()),
                         ids=lambda f: f.key)
def test_every_listed_backbone_builds(fam):
    for name in mmvit.list_models(f'{fam.key}_*'):
        if name.endswith('_in1k'):
            continue
        model = mmvit.get_model(name, out_indices=(1, 2))
        assert type(model).__name__ == fam.backbone
        info = model.feature_info
        assert [f['reduction'] for f in info] == list(fam.strides[1:3])
        assert [f['num_chs'] for f in info] == \
            mmvit.model_info(name)['channels'][1:3]


def test_get_model_builds_configs_and_checks_names():
    detector = mmvit.get_model('retinanet_efficientvit_m0')
    assert type(detector).__name__ == 'RetinaNet'
    assert detector.neck.in_channels == [
        f['num_chs'] for f in detector.backbone.feature_info]
    with pytest.raises(KeyError, match="unknown model 'cas_vit_l'.*e.g. "):
        mmvit.get_model('cas_vit_l')
    with pytest.raises(ValueError, match='Google Drive'):
        mmvit.get_model('cas_vit_s', pretrained=True)
    with pytest.raises(ValueError, match='no weights were released'):
        mmvit.get_model('castling_vit_xs', pretrained=True)
    with pytest.raises(TypeError, match='pass cfg_options'):
        mmvit.get_model('retinanet_cas_vit_s', out_indices=(1, ))


def test_get_model_loads_a_checkpoint(tmp_path):
    source = mmvit.get_model('cas_vit_xs_in1k')
    path = tmp_path / 'classifier.pth'
    torch.save({'state_dict': source.state_dict()}, path)
    loaded = mmvit.get_model('cas_vit_xs_in1k', pretrained=str(path))
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    backbone = mmvit.get_model('cas_vit_xs', pretrained=str(path),
                               out_indices=(3, ))
    assert torch.equal(backbone.norm3.weight, source.backbone.norm3.weight)


@pytest.mark.slow
def test_installed_wheel_ships_configs_and_the_index(tmp_path):
    """``pip wheel`` then an install outside the checkout: the configs and
    the index travel with the package, and a config elsewhere inherits
    ``mmvit::<family>/<config>``."""
    wheels, target, work = (tmp_path / d for d in ('wheels', 'site', 'work'))
    work.mkdir()
    # a copy of the checkout: pip builds in the source tree, whose build/
    # may hold files of earlier builds
    source = tmp_path / 'source'
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        '.venv', '.git', 'build', 'work_dirs', 'data', '__pycache__'))
    proc = subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps',
         '--no-build-isolation', '-w', str(wheels), str(source)],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (wheel, ) = wheels.glob('mmvit-*.whl')
    assert f'mmvit-{mmvit.__version__}-' in wheel.name
    archive = zipfile.ZipFile(wheel)
    names = set(archive.namelist())
    for name in ('mmvit/.mim/model-index.yml',
                 'mmvit/.mim/configs/cmt/metafile.yml',
                 'mmvit/.mim/configs/cas_vit/retinanet_cas_vit_s.py',
                 'mmvit/.mim/configs/_base_/cas_vit.py',
                 'mmvit/.mim/configs/cas_vit/retinanet_cas_vit_s.py',
                 'mmvit/.mim/configs/cga/retinanet_r50_cga.py'):
        assert name in names, name
    assert b'configs/cas_vit/metafile.yml' in archive.read(
        'mmvit/.mim/model-index.yml')
    meta = archive.read(next(n for n in names if n.endswith('METADATA')))
    assert 'Requires-Dist: mmcv<2.2.0,>=2.0.0' in meta.decode()
    assert 'Provides-Extra: det' in meta.decode()
    assert 'Provides-Extra: yolo' not in meta.decode()
    assert not any('yolo' in n or 'ultralytics' in n for n in names)

    proc = subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '--no-deps', '-q',
         '--target', str(target), str(wheel)],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (work / 'mine.py').write_text(
        "_base_ = 'mmvit::cas_vit/retinanet_cas_vit_s.py'\n"
        "model = dict(backbone=dict(drop_path_rate=0.2))\n")
    code = '''
import mmvit
from mmengine.config import Config
from mmvit.utils.config import build_model
cfg = Config.fromfile('mine.py')
model = build_model(cfg)
print(mmvit.__file__)
print(type(model).__name__, cfg.model.backbone.drop_path_rate,
      len(mmvit.list_models()))
'''
    env = dict(os.environ, PYTHONPATH=str(target))
    proc = subprocess.run([sys.executable, '-c', code], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    where, result = proc.stdout.strip().splitlines()[-2:]
    assert where.startswith(str(target))  # the installed copy
    assert result == f'RetinaNet 0.2 {len(mmvit.list_models())}'


@pytest.mark.slow
def test_mmvit_configs_resolve_outside_the_checkout(tmp_path):
    """In the environment the README builds (an editable install) a config
    in any folder inherits ``mmvit::<family>/<config>.py``."""
    (tmp_path / 'mine.py').write_text(
        "_base_ = 'mmvit::cas_vit/retinanet_cas_vit_s.py'\n"
        "model = dict(backbone=dict(drop_path_rate=0.2))\n")
    code = (
        'import mmvit\n'
        'from mmengine.config import Config\n'
        'from mmvit.utils.config import build_model\n'
        "cfg = Config.fromfile('mine.py')\n"
        'print(type(build_model(cfg)).__name__, '
        'cfg.model.backbone.drop_path_rate)\n')
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    proc = subprocess.run([sys.executable, '-c', code], cwd=tmp_path,
                          env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == 'RetinaNet 0.2'


def test_collect_env_reports_the_stack(capsys):
    from mmvit.utils.collect_env import main
    main()  # what python -m mmvit.utils.collect_env prints
    lines = dict(line.split(': ', 1)
                 for line in capsys.readouterr().out.splitlines()
                 if ': ' in line)
    assert lines['mmvit'].startswith(mmvit.__version__)
    assert lines['mmcv'] == '2.1.0' and lines['mmdet'] == '3.3.0'
    assert lines['mmcv ops'].startswith('compiled')
    assert 'PyTorch' in lines


@pytest.mark.slow
def test_dist_scripts_use_the_checkouts_environment(tmp_path):
    """Without ``PYTHON`` and with no environment active (no python with
    torch on PATH), tools/dist_train.sh runs the checkout's .venv."""
    venv_python = osp.join(ROOT, '.venv', 'bin', 'python')
    if not osp.isfile(venv_python):
        pytest.skip('the checkout has no .venv (made by make / bootstrap)')
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHON', 'VIRTUAL_ENV', 'PYTHONPATH')}
    env['PATH'] = '/usr/bin:/bin'
    broken = tmp_path / 'broken_config.py'
    broken.write_text('model = dict(\n')  # read by Python: a syntax error
    proc = subprocess.run(
        ['bash', osp.join(ROOT, 'tools', 'dist_train.sh'), str(broken), '1'],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "No module named 'torch'" not in output
    assert 'broken_config.py' in output and 'Python syntax error' in output
