import os.path as osp
import subprocess
import sys

import pytest

PROJECT = osp.dirname(osp.dirname(osp.abspath(__file__)))
ROOT = osp.dirname(osp.dirname(PROJECT))
sys.path[:0] = [PROJECT, ROOT]


@pytest.fixture(scope='session')
def toy_coco(tmp_path_factory):
    """A tiny COCO-layout set: 8 train / 4 val images of 96 px."""
    out = tmp_path_factory.mktemp('toy_coco')
    subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'make_toy_data.py'),
                    '--task', 'coco', '--out', str(out), '--num-train', '8',
                    '--num-val', '4', '--size', '96'], check=True)
    return str(out)
