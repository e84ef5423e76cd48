"""`type='mmvit.X'` builds from mmdet, mmseg and mmpretrain scopes.

Each case runs in a fresh interpreter that never imports mmvit itself, with
no custom_imports: the registry tree must find the mmvit scope on its own.
"""
import subprocess
import sys

import pytest

SCRIPT = '''
import sys
from mmengine.registry import DefaultScope
from {scope}.registry import MODELS
DefaultScope.get_instance('t', scope_name='{scope}')
model = MODELS.build(dict(type='mmvit.CASViT', arch='xs', out_indices=(3,)))
assert 'mmvit' in sys.modules, 'mmvit was not imported by the registry'
print(type(model).__module__, type(model).__name__, model.out_channels)
'''


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg', 'mmpretrain'])
def test_build_from_scope(scope):
    proc = subprocess.run([sys.executable, '-c', SCRIPT.format(scope=scope)],
                          capture_output=True, text=True, cwd='/',
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last_line = proc.stdout.strip().splitlines()[-1]
    assert last_line == 'mmvit.models.backbones.cas_vit CASViT (220,)', \
        proc.stdout


def test_unknown_type_names_scope():
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope
    DefaultScope.get_instance('unknown-type', scope_name='mmdet')
    with pytest.raises(KeyError, match='mmvit'):
        MODELS.build(dict(type='mmvit.NoSuchNet'))
