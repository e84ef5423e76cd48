import os
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

# pytest-xdist runs a worker per core (`make test`: -n 2). Each worker, and
# each tool it starts, computes on its share of the cores instead of all of
# them: with two workers' OpenMP threads oversubscribing two cores the
# suite took 861 s, with one thread each 431 s. Set before torch is
# imported.
_WORKERS = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '0'))
if _WORKERS:
    os.environ.setdefault('OMP_NUM_THREADS',
                          str(max(1, (os.cpu_count() or 1) // _WORKERS)))


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


def config_file(name):
    """The path of ``configs/<family>/<name>``."""
    family = next(key for key in ('cas_vit', 'castling_vit', 'cmt',
                                  'efficientvit') if f'_{key}_' in name)
    return osp.join(ROOT, 'configs', family, name)


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


@pytest.fixture(scope='session')
def toy_imagenet(tmp_path_factory):
    """A tiny ImageNet-layout set: 16 train / 8 val images of 48 px."""
    return write_toy_data(tmp_path_factory, 'imagenet', 16, 8, 48)


def run_main(script, args):
    """Run a project script's ``main(args)`` in this process, from the
    repository root (the command line's code without a new interpreter);
    returns what it returns."""
    import importlib.util
    name = osp.splitext(osp.basename(script))[0]
    spec = importlib.util.spec_from_file_location(f'_script_{name}',
                                                  osp.join(ROOT, script))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return module.main([str(a) for a in args])
    finally:
        os.chdir(cwd)


def make_runner(cfg, work_dir):
    """An mmengine Runner for ``cfg`` on CPU: no worker processes, seed 0."""
    import mmvit  # noqa: F401
    from mmengine.runner import Runner
    cfg.work_dir = str(work_dir)
    cfg.randomness = dict(seed=0)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
    cfg.default_hooks.logger.interval = 1
    return Runner.from_cfg(cfg)


def use_toy_coco(cfg, data_root):
    """Point every loader and evaluator of a detection config at data_root."""
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = data_root + '/'
    for evaluator in ('val_evaluator', 'test_evaluator'):
        cfg[evaluator].ann_file = \
            f'{data_root}/annotations/instances_val2017.json'
    return cfg


@pytest.fixture(autouse=True)
def seeded_torch():
    """Every test starts from torch's seed 0, so its random weights and
    inputs are the same whichever pytest-xdist worker runs it after which
    tests (with unseeded draws, Castling-ViT's deploy test failed about one
    run in thirty: random weights for which the float32 eval model itself
    is 3e-4 away from float64, and the deployed model likewise)."""
    import torch
    torch.manual_seed(0)


def randomize(model):
    """Small random weights and valid (positive) BatchNorm variances."""
    import torch
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if value.dtype.is_floating_point:
                value.copy_(torch.randn_like(value) * 0.05)
            if key.endswith('running_var'):
                value.abs_().add_(0.5)
    return model
