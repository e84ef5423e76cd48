import os
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)


@pytest.fixture(scope='session')
def toy_coco(tmp_path_factory):
    """A tiny COCO-layout set written by the project's data tool."""
    out = tmp_path_factory.mktemp('toy_coco')
    subprocess.run([
        sys.executable, osp.join(ROOT, 'tools', 'make_toy_data.py'),
        '--task', 'coco', '--out', str(out), '--num-train', '8',
        '--num-val', '4', '--size', '96'
    ], check=True)
    return str(out)


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
    """A tiny ADE20K-layout set written by the project's data tool."""
    out = tmp_path_factory.mktemp('toy_ade')
    subprocess.run([
        sys.executable, osp.join(ROOT, 'tools', 'make_toy_data.py'),
        '--task', 'ade', '--out', str(out), '--num-train', '4',
        '--num-val', '2', '--size', '64'
    ], check=True)
    return str(out)
