"""The package's layers: imports point down, optional libraries stay
optional, model files hold the model, tools stay thin."""
import ast
import glob
import os.path as osp
import re
import subprocess
import sys

import pytest

from conftest import ROOT

PACKAGE = osp.join(ROOT, 'mmvit')

# A module may import only modules of its own rank or below where marked
# lateral-free; ranks are the package's layers, bottom first.
RANKS = [
    (r'mmvit\.(version|registry|families)$|'
     r'mmvit\.utils(\.__init__|\.checkpoint|\.version_check)?$',
     0),
    (r'mmvit\.converters(\..*)?$|mmvit\.models\.(layers|utils)(\..*)?$', 1),
    (r'mmvit\.models\.backbones(\..*)?$', 2),
    (r'mmvit\.models(\.__init__)?$|'
     r'mmvit\.models\.(necks|heads|plugins|tta)(\..*)?$', 3),
    (r'mmvit\.deploy(\..*)?$', 4),
    (r'mmvit\.engine(\..*)?$', 4.5),
    (r'mmvit\.utils\.config$', 4.7),
    (r'mmvit\.export(\..*)?$|mmvit\.utils\.benchmark$', 5),
    (r'mmvit\.apis(\..*)?$|mmvit\.utils\.collect_env$', 6),
    # the package facade re-exports the model-index API
    (r'mmvit(\.__init__)?$', 7),
]


def rank(module):
    for pattern, value in RANKS:
        if re.match(pattern, module):
            return value
    raise AssertionError(f'{module} belongs to no layer of the test')


def module_name(path):
    rel = osp.relpath(path, ROOT)[:-3].replace(osp.sep, '.')
    return rel[:-len('.__init__')] if rel.endswith('.__init__') else rel


def imports_of(path):
    """The mmvit modules ``path`` imports (any scope, relative resolved)."""
    name = module_name(path)
    package = name if path.endswith('__init__.py') else \
        name.rsplit('.', 1)[0]
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parts = package.split('.')
                parts = parts[:len(parts) - node.level + 1]
                base = '.'.join(parts + ([base] if base else []))
            targets = [base]
            if not node.module:  # from . import a, b
                targets = [f'{base}.{a.name}' for a in node.names]
        else:
            continue
        for target in targets:
            if target == 'mmvit' or target.startswith('mmvit.'):
                yield node.lineno, target


def test_imports_point_down():
    arrows, upward = set(), []
    for path in glob.glob(osp.join(PACKAGE, '**', '*.py'), recursive=True):
        source = module_name(path)
        for line, target in imports_of(path):
            # importing a package means its __init__
            while target and not (
                    osp.isfile(osp.join(ROOT, *target.split('.')) + '.py')
                    or osp.isdir(osp.join(ROOT, *target.split('.')))):
                target = target.rsplit('.', 1)[0]
            if target == source:
                continue
            arrows.add((source, target))
            if rank(target) > rank(source):
                upward.append(f'{source}:{line} -> {target}')
    assert arrows  # the walk found the package's imports
    assert not upward, 'imports pointing up:\n' + '\n'.join(upward)


FORWARD_LIKE = re.compile(r'\n    def (forward_\w+|_forward\w*|forward_nhwc|'
                          r'forward_graph|forward_deployed)\(')


def test_model_files_have_one_forward_per_module():
    for path in glob.glob(osp.join(PACKAGE, 'models', '**', '*.py'),
                          recursive=True):
        text = open(path).read()
        assert not FORWARD_LIKE.search(text), path
        # no device, allocator, layout or tracer special cases
        for word in ('onednn', 'mkldnn', 'channels_last', 'is_exporting',
                     'is_tracing', 'nhwc', 'device.type', 'malloc',
                     'row_bands', 'in_bands', 'autocast', '_cache'):
            assert word not in text.lower(), (path, word)
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                forwards = [f.name for f in node.body
                            if isinstance(f, ast.FunctionDef)
                            and f.name == 'forward']
                assert len(forwards) <= 1, (path, node.name)


def test_train_and_test_read_like_mmdets():
    """tools/train.py and tools/test.py: the config, the tool's own steps
    and ``Runner.from_cfg``, no validators of their own in the package."""
    for name in ('train.py', 'test.py'):
        text = open(osp.join(ROOT, 'tools', name)).read()
        assert len(text.splitlines()) <= 170, (name, len(text.splitlines()))
        assert 'Runner.from_cfg(cfg)' in text, name
    tools = glob.glob(osp.join(ROOT, 'tools', '**', '*.py'),
                      recursive=True) + glob.glob(osp.join(ROOT, 'demo',
                                                           '*.py'))
    for path in tools:
        assert 'spec_from_file_location' not in open(path).read(), path


def test_the_package_imports_no_tools_projects_or_ultralytics():
    code = (
        'import sys, mmvit.models, mmvit.apis.inference, mmvit.export.onnx\n'
        'bad = [m for m in sys.modules if m.split(".")[0] in '
        '("tools", "projects", "yolov8_cga", "ultralytics")]\n'
        'print(bad)\n')
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == '[]', out.stdout


def test_models_import_with_mmseg_alone():
    code = '''
import sys
for name in ('mmdet', 'mmpretrain'):
    sys.modules[name] = None  # as if not installed
import torch
import mmvit.models
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
init_default_scope('mmseg')
backbone = MODELS.build(dict(type='mmvit.EfficientViT', arch='m0')).eval()
neck = MODELS.build(dict(type='mmvit.EfficientViTFPN', in_channels=[64, 128,
    192], out_channels=32, num_outs=5, num_extra_trans_convs=2))
outs = neck(backbone(torch.rand(1, 3, 128, 128)))
print(len(outs), type(neck).__mro__[1].__module__)
print(sorted(k for k, v in sys.modules.items()
             if k.startswith(('mmdet', 'mmpretrain')) and v is not None))
'''
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[-2] == '5 mmseg.models.necks.fpn'
    assert lines[-1] == '[]'


@pytest.mark.parametrize('text', ['measured', 'faster than', 'slower',
                                  ' ms ', 'speed-up'])
def test_docstrings_hold_no_measurements(text):
    for path in glob.glob(osp.join(PACKAGE, '**', '*.py'), recursive=True):
        if path.endswith(osp.join('utils', 'benchmark.py')):
            continue  # the benchmark describes what it measures
        assert text not in open(path).read(), (path, text)
