"""Kills while a checkpoint is written, damaged newest checkpoints, several
nodes and a dying rank, through the real tools."""
import glob
import json
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, run_tool
from mmvit.engine.checkpoint import (checkpoint_problem, find_resume_checkpoint,
                                     read_last_checkpoint)
from mmvit.utils import read_checkpoint
from test_training import CONFIG, OVERLAY, toy_options

pytestmark = pytest.mark.slow  # end-to-end runs

# Runs tools/train.py with the checkpoint writer of mmvit.engine.checkpoint
# cut off: at the KILL_AT_SAVE-th checkpoint it writes half of the bytes,
# flushes them to disk and SIGKILLs its own process in the middle of the save.
_DRIVER = '''
import os, runpy, signal, sys
sys.path.insert(0, {root!r})
import mmvit.engine.checkpoint as checkpoint

kill_at, saves = int(os.environ['KILL_AT_SAVE']), []
real_open = open


class HalfThenDie:
    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.f.__exit__(*exc)

    def write(self, data):
        self.f.write(data[:len(data) // 2])
        self.f.flush()
        os.fsync(self.f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)

    def __getattr__(self, name):
        return getattr(self.f, name)


def cut_open(path, mode='r', *args, **kwargs):
    f = real_open(path, mode, *args, **kwargs)
    if 'w' in mode and '.pth.tmp-' in os.path.basename(path):
        saves.append(path)
        if len(saves) == kill_at:
            return HalfThenDie(f)
    return f


checkpoint.open = cut_open
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


def _output(proc):
    return proc.stdout + proc.stderr


def _exact_args(data_root, work_dir, epochs=3, extra=()):
    """3 epochs of 4 iterations, validation at the end, deterministic."""
    return ['tools/train.py', CONFIG, '--overlay', OVERLAY, '--work-dir',
            str(work_dir)] + list(extra) + toy_options(data_root, epochs) + [
                'train_dataloader.batch_size=2', 'train_cfg.val_interval=3',
                'randomness.deterministic=True']


def _last_metric(work_dir, key='coco/bbox_mAP'):
    values = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                          'scalars.json'))):
        values += [json.loads(line)[key] for line in open(path)
                   if key in line]
    return values[-1]


def test_kill_while_saving_then_resume_matches_an_uninterrupted_run(
        toy_coco, tmp_path):
    """SIGKILL in the middle of writing the second checkpoint, resume: the
    previous checkpoint survived, and the resumed run ends with the weights
    and COCO AP of a run that was never interrupted (RNG states restored by
    mmvit.RandomStateHook)."""
    whole, work = tmp_path / 'whole', tmp_path / 'work'
    run_tool(_exact_args(toy_coco, whole))
    driver = tmp_path / 'driver.py'
    driver.write_text(_DRIVER.format(root=ROOT))
    # keep one checkpoint only: mmengine's own hook deletes epoch_1.pth
    # before writing epoch_2.pth, so this kill would leave nothing complete
    proc = subprocess.run(
        [sys.executable, str(driver)] + _exact_args(toy_coco, work) +
        ['default_hooks.checkpoint.max_keep_ckpts=1'], cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT, KILL_AT_SAVE='2'),
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, _output(proc)[-3000:]
    first = str(work / 'epoch_1.pth')
    assert checkpoint_problem(first) is None
    assert not (work / 'epoch_2.pth').exists()
    assert read_last_checkpoint(work) == first
    (partial, ) = glob.glob(str(work / '.epoch_2.pth.tmp-*'))
    assert checkpoint_problem(partial) is not None  # really cut short

    proc = run_tool(_exact_args(toy_coco, work, extra=['--resume']))
    assert 'resumed epoch: 1, iter: 4' in _output(proc)
    assert not glob.glob(str(work / '.*.tmp-*'))  # the rest was cleaned
    newest = work / 'epoch_3.pth'
    assert read_last_checkpoint(work) == str(newest)
    a = read_checkpoint(whole / 'epoch_3.pth')['state_dict']
    b = read_checkpoint(newest)['state_dict']
    assert a.keys() == b.keys()
    worst = max((a[k].double() - b[k].double()).abs().max().item()
                for k in a if a[k].is_floating_point())
    assert worst <= 1e-6, worst
    assert _last_metric(whole) == _last_metric(work)

    # the newest checkpoint damaged after the fact (a disk fault, a copy cut
    # short): an explicit --resume of it is refused, naming the good one ...
    data = newest.read_bytes()
    newest.write_bytes(data[:len(data) // 3])
    second = str(work / 'epoch_2.pth')
    with pytest.raises(RuntimeError) as error:
        find_resume_checkpoint(str(work), str(newest))  # train.py's call
    assert f"--resume '{newest}': cannot resume from this file" in str(
        error.value)
    assert f"next to it is '{second}'" in str(error.value)
    # ... and --resume without a path falls back to it, naming both (two
    # epochs to train: the resumed run ends at once)
    proc = run_tool(_exact_args(toy_coco, work, 2, ['--resume']))
    assert (f"the newest checkpoint '{newest}' cannot be used" in
            proc.stderr and f"resuming from '{second}'" in proc.stderr)
    assert 'resumed epoch: 2, iter: 8' in _output(proc)
    assert newest.stat().st_size == len(data) // 3  # left as it was


def test_resume_with_only_damaged_checkpoints_stops(tmp_path):
    for name in ('epoch_1.pth', 'epoch_2.pth'):
        (tmp_path / name).write_bytes(b'PK\x03\x04 cut')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_2.pth'))
    with pytest.raises(RuntimeError, match=r'--resume: no complete '
                       r'checkpoint in .*epoch_2.pth: .*epoch_1.pth: .*Start '
                       r'without --resume'):
        find_resume_checkpoint(str(tmp_path))
    assert find_resume_checkpoint(str(tmp_path / 'empty')) is None


# --- several nodes, a dying rank ---------------------------------------------
def _dist(args, port, nnodes=1, node_rank=0):
    # one thread per process, as torchrun sets for several processes per
    # node (it leaves one process per node at the default): the same kernels
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(port),
               NNODES=str(nnodes), NODE_RANK=str(node_rank),
               MASTER_ADDR='127.0.0.1', OMP_NUM_THREADS='1')
    return subprocess.Popen(['bash'] + args, cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _finish(procs, timeout=900):
    outputs = [p.communicate(timeout=timeout)[0] for p in procs]
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-3000:]
    return outputs


def _dist_options(data_root, epochs):
    return toy_options(data_root, epochs) + [
        'train_dataloader.batch_size=2', 'train_cfg.val_interval=10',
        'randomness.deterministic=True']


_NO_RANDOMNESS = '''
# no random flips and frozen BatchNorm statistics: what the processes of a
# distributed run would draw or measure differently from one process
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='PackDetInputs'),
]))
model = dict(backbone=dict(norm_eval=True))
'''


def _max_difference(a, b):
    return max((v.double() - b[k].double()).abs().max().item()
               for k, v in a.items()
               if v.is_floating_point() and 'running' not in k)


def test_two_processes_and_two_nodes_match_one(toy_coco, tmp_path):
    """One process with batch 4 against dist_train.sh / dist_test.sh with
    two processes of batch 2 (gloo on CPU), on one node and on two nodes
    (two torchrun launches with NNODES=2 on this machine)."""
    overlay = tmp_path / 'no_randomness.py'
    overlay.write_text(_NO_RANDOMNESS)

    def options(batch):
        return ['--overlay', OVERLAY, '--overlay', str(overlay)] + \
            toy_options(toy_coco, 1) + [
                f'train_dataloader.batch_size={batch}',
                'train_cfg.val_interval=2', 'randomness.deterministic=True']

    one, two, nodes = (tmp_path / d for d in ('one', 'two', 'nodes'))
    run_tool(['tools/train.py', CONFIG, '--work-dir', str(one)] + options(4))
    train = ['tools/dist_train.sh', CONFIG]
    _finish([_dist(train + ['2', '--work-dir', str(two)] + options(2),
                   29621)])
    _finish([_dist(train + ['1', '--work-dir', str(nodes)] + options(2),
                   29622, nnodes=2, node_rank=rank) for rank in (0, 1)])
    a, b, c = (read_checkpoint(d / 'epoch_1.pth') for d in (one, two, nodes))
    assert a['meta']['iter'] == b['meta']['iter'] == c['meta']['iter'] == 2
    # the detector's losses are normalised by the positive anchors of each
    # process's own batch, so 2 x 2 images is not exactly 1 x 4 (the docs
    # state the measured difference); two nodes are the same two ranks
    processes = _max_difference(a['state_dict'], b['state_dict'])
    node = _max_difference(b['state_dict'], c['state_dict'])
    print('max abs weight difference, 2 processes vs 1:', processes,
          '; 2 nodes x 1 vs 1 node x 2:', node)
    assert processes < 1e-3, processes
    assert node <= 1e-6, node

    # evaluation by two processes, on one or two nodes: the same metrics
    ckpt = str(one / 'epoch_1.pth')
    run_tool(['tools/test.py', CONFIG, ckpt, '--work-dir',
              str(tmp_path / 't1')] + options(4))
    test = ['tools/dist_test.sh', CONFIG, ckpt]
    _finish([_dist(test + ['2', '--work-dir', str(tmp_path / 't2')] +
                   options(4), 29623)])
    _finish([_dist(test + ['1', '--work-dir', str(tmp_path / 't3')] +
                   options(4), 29624, nnodes=2, node_rank=rank)
             for rank in (0, 1)])
    metrics = [json.load(open(glob.glob(str(tmp_path / d / '*' /
                                             '*.json'))[0]))['coco/bbox_mAP']
               for d in ('t1', 't2', 't3')]
    assert metrics[0] == metrics[1] == metrics[2], metrics


def _worker_with_rank(root_pid, rank):
    """The pid of the descendant of ``root_pid`` whose RANK is ``rank``."""
    children = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                stat = open(f'/proc/{entry}/stat').read()
            except OSError:
                continue
            ppid = int(stat.rsplit(')', 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    todo = list(children.get(root_pid, []))
    while todo:
        pid = todo.pop()
        try:
            environ = open(f'/proc/{pid}/environ', 'rb').read().split(b'\0')
        except OSError:
            continue
        if f'RANK={rank}'.encode() in environ and b'LOCAL_RANK=' + str(
                rank).encode() in environ:
            return pid
        todo += children.get(pid, [])
    return None


def test_a_dying_rank_stops_the_run_and_resume_continues(toy_coco, tmp_path):
    work = tmp_path / 'work'
    args = ['tools/dist_train.sh', CONFIG, '2', '--overlay', OVERLAY,
            '--work-dir', str(work)] + _dist_options(toy_coco, 2) + [
                'train_dataloader.batch_size=1']  # 4 iterations an epoch
    env = dict(os.environ, PYTHON=sys.executable, PORT='29625')
    log = open(tmp_path / 'run.log', 'w')
    proc = subprocess.Popen(['bash'] + args, cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    deadline = time.time() + 600
    victim = None
    while time.time() < deadline and proc.poll() is None:
        if re.search(r'Epoch\(train\) +\[2\]\[1/4\]',
                     open(tmp_path / 'run.log').read()):
            victim = _worker_with_rank(proc.pid, 1)
            break
        time.sleep(0.2)
    assert victim is not None, open(tmp_path / 'run.log').read()[-3000:]
    os.kill(victim, signal.SIGKILL)
    killed_at = time.time()
    proc.wait(timeout=300)
    stopped_after = time.time() - killed_at
    text = open(tmp_path / 'run.log').read()
    print(f'the run stopped {stopped_after:.1f} s after rank 1 was killed')
    assert proc.returncode != 0
    assert stopped_after < 120
    assert re.search(r'rank\s*:\s*1', text) and 'Signal 9 (SIGKILL)' in text, \
        text[-3000:]
    assert checkpoint_problem(str(work / 'epoch_1.pth')) is None
    assert not (work / 'epoch_2.pth').exists()

    resume = _dist(args + ['--resume'], 29626)
    (out, ) = _finish([resume])
    assert 'resumed epoch: 1, iter: 4' in out, out[-3000:]
    assert checkpoint_problem(str(work / 'epoch_2.pth')) is None


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path,
                                                          monkeypatch):
    from mmvit.engine import checkpoint
    target = tmp_path / 'epoch_1.pth'
    checkpoint.atomic_write(b'old', target)

    def failing_replace(src, dst):
        raise KeyboardInterrupt  # e.g. Ctrl-C between write and rename

    monkeypatch.setattr(checkpoint.os, 'replace', failing_replace)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.atomic_write(b'new', target)
    assert target.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['epoch_1.pth']  # no temporary file left


def test_only_the_main_process_writes_the_test_metrics(monkeypatch):
    """mmengine's LoggerHook dumps the test metrics from every process to
    one file; the tools' hook leaves that to the main process."""
    from mmengine import dist
    from mmengine.hooks import LoggerHook
    from mmvit.engine import MainProcessLoggerHook
    calls = []
    monkeypatch.setattr(LoggerHook, 'after_test_epoch',
                        lambda self, runner, metrics=None: calls.append(1))
    hook = MainProcessLoggerHook()
    monkeypatch.setattr(dist, 'is_main_process', lambda: False)
    hook.after_test_epoch(None, {})
    assert calls == []
    monkeypatch.setattr(dist, 'is_main_process', lambda: True)
    hook.after_test_epoch(None, {})
    assert calls == [1]
    # every config of the project declares it
    from mmvit.utils.config import load_config
    cfg = load_config(CONFIG)
    assert cfg.default_hooks.logger.type == 'mmvit.MainProcessLoggerHook'
    assert cfg.default_hooks.checkpoint.type == 'mmvit.AtomicCheckpointHook'


def test_removals_wait_for_the_next_complete_checkpoint(tmp_path):
    """mmengine's hook removes the oldest checkpoint before it writes the
    new one; through the atomic backend the file goes only once the new one
    is in place."""
    from mmvit.engine.checkpoint import AtomicLocalBackend
    backend = AtomicLocalBackend()
    old, new = tmp_path / 'epoch_1.pth', tmp_path / 'epoch_2.pth'
    old.write_bytes(b'old')
    backend.remove(str(old))
    assert old.read_bytes() == b'old'  # still there
    backend.put(b'new', str(new))
    assert not old.exists() and new.read_bytes() == b'new'
