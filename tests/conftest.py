import os
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)


def write_toy_data(tmp_path_factory, task, num_train, num_val, size):
    """Write a tiny data set of ``task`` layout with the project's tool."""
    out = tmp_path_factory.mktemp(f'toy_{task}')
    subprocess.run([
        sys.executable, osp.join(ROOT, 'tools', 'make_toy_data.py'),
        '--task', task, '--out', str(out), '--num-train', str(num_train),
        '--num-val', str(num_val), '--size', str(size)
    ], check=True)
    return str(out)


@pytest.fixture(scope='session')
def toy_coco(tmp_path_factory):
    """A tiny COCO-layout set: 8 train / 4 val images of 96 px."""
    return write_toy_data(tmp_path_factory, 'coco', 8, 4, 96)


def run_tool(args, cwd=ROOT, timeout=600):
    """Run a project script with this interpreter; fail with its output."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable] + args, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(
            f'{" ".join(args)} failed ({proc.returncode}):\n'
            f'{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}')
    return proc


@pytest.fixture(scope='session')
def toy_ade(tmp_path_factory):
    """A tiny ADE20K-layout set: 4 train / 2 val scenes of 64 px."""
    return write_toy_data(tmp_path_factory, 'ade', 4, 2, 64)
