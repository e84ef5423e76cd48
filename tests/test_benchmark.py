"""The benchmark, model-zoo and peer tools: their arithmetic, tables and
arguments on fixed inputs (no test here times a model)."""
import importlib.util
import os.path as osp
import sys

import pytest
import torch
from conftest import ROOT
from mmvit.utils import benchmark as lib


def load_tool(name):
    """tools/analysis/<name>.py as a module (tools/ is not a package)."""
    folder = osp.join(ROOT, 'tools', 'analysis')
    if folder not in sys.path:  # the tools import each other
        sys.path.insert(0, folder)
    path = osp.join(folder, f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'_tool_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table_rows(text, first_cell):
    """The cells of the markdown rows of ``text`` starting with
    ``first_cell``, and the header's cells."""
    lines = [line for line in text.splitlines() if line.startswith('| ')]
    split = [[c.strip() for c in line.strip().strip('|').split('|')]
             for line in lines]
    return split[0], [cells for cells in split[1:]
                      if cells[0] == first_cell]


@pytest.fixture
def keep_threads():
    """In-process tool calls set torch's thread count; restore it."""
    threads = torch.get_num_threads()
    yield threads
    torch.set_num_threads(threads)


def test_statistics_and_table_cells():
    """Latency cells from fixed timings: (median, min, max) in ms, the
    noise flag past a 1.5x spread, MiB and relative differences."""
    assert lib.summarize([0.030, 0.010, 0.020]) == (20.0, 10.0, 30.0)
    assert lib.summarize([0.004, 0.002]) == (3.0, 2.0, 4.0)
    assert not lib.noisy((20.0, 10.0, 15.0))
    assert lib.noisy((20.0, 10.0, 15.1))
    assert not lib.noisy((0.0, 0.0, 1.0))  # nothing measured
    assert lib.format_mib(150 * 2**20) == '150'
    assert lib.format_mib(2.5 * 2**20) == '2.5'
    assert lib.relative_difference(torch.tensor([2., -4.]),
                                   torch.tensor([2., -3.])) == 0.25
    assert lib.markdown_table(['a', 'b'], [[1, 'x'], [2, 'y']]) == (
        '| a | b |\n|---|---|\n| 1 | x |\n| 2 | y |')
    assert lib.size_label((800, 1216)) == '800x1216'
    assert lib.pixels((800, 1216)) == 800 * 1216
    model = torch.nn.Linear(3, 2)
    assert lib.count_params(model) == 8


def test_benchmark_bad_arguments(capsys, keep_threads):
    bench = load_tool('benchmark')
    assert lib.parse_size('224') == (224, 224)
    assert lib.parse_size('800x1216') == (800, 1216)
    assert lib.parse_flops_size(['800', '1280']) == (800, 1280)
    assert lib.parse_flops_size(['0']) is None
    for bad in ('800x', 'x800', '800x0', '12.5', '800*1216'):
        with pytest.raises(ValueError, match='HxW'):
            lib.parse_size(bad)

    base = ['--backbone', 'EfficientViT', '--archs', 'm0',
            '--no-malloc-tuning', '--threads', str(keep_threads)]
    with pytest.raises(SystemExit) as exit_info:
        bench.main(base + ['--sizes', '800x'])
    assert exit_info.value.code == 2
    assert "invalid size '800x'" in capsys.readouterr().err

    if not torch.cuda.is_available():
        with pytest.raises(SystemExit) as exit_info:
            bench.main(base + ['--device', 'cuda'])
        assert 'CUDA is not available' in str(exit_info.value.code)
    with pytest.raises(SystemExit) as exit_info:
        bench.main(base + ['--device', 'gpu0'])
    assert 'not a device' in str(exit_info.value.code)


def test_model_zoo_failure_stays_in_its_row(monkeypatch, keep_threads):
    zoo = load_tool('model_zoo')

    def broken(name, arch):
        raise RuntimeError(f'cannot build {name} {arch}')

    monkeypatch.setattr(zoo.bench, 'build_backbone', broken)
    rows = zoo.main(['--families', 'efficientvit', 'castling_vit',
                     '--variants', 'efficientvit:m0', 'castling_vit:xs',
                     '--detectors', '--no-malloc-tuning', '--threads',
                     str(keep_threads)])
    assert [row.name for row in rows] == ['EfficientViT m0',
                                         'Castling-ViT xs']
    assert all(row.cells['params'] == 'error' for row in rows)
    assert 'RuntimeError' in repr(rows[1].errors)
    markdown = zoo.render(rows, zoo.parse_args(
        ['--detectors']), zoo.bench.Options(), tuned=False)
    assert '| Castling-ViT xs [2] | error |' in markdown
    assert '[2] Castling-ViT xs, backbone failed: RuntimeError: cannot ' \
        'build CastlingViT xs' in markdown


def test_replace_between_markers():
    zoo = load_tool('model_zoo')
    text = 'a\n<!-- model-zoo:start -->\nold\n<!-- model-zoo:end -->\nb\n'
    assert zoo.replace_between_markers(text, 'new\n') == (
        'a\n<!-- model-zoo:start -->\n\nnew\n\n<!-- model-zoo:end -->\nb\n')
    for bad in ('no markers\n', text + '<!-- model-zoo:start -->\n',
                'x\n<!-- model-zoo:end -->\n<!-- model-zoo:start -->\n'):
        with pytest.raises(ValueError):
            zoo.replace_between_markers(bad, 'new')


def test_train_benchmark_config_arguments(capsys):
    tool = load_tool('train_benchmark')
    for argv in (['--config', 'configs/cas_vit/retinanet_cas_vit_xs.py',
                  '--settings', 'eager', 'with_cp'],
                 ['--config', 'configs/cas_vit/retinanet_cas_vit_xs.py',
                  '--backbone', 'CASViT', '--archs', 'xs'],
                 ['--backbone', 'CASViT']):
        with pytest.raises(SystemExit):
            tool.main(argv)
    err = capsys.readouterr().err
    assert '--config runs the settings eager, compile; got eager with_cp' \
        in err
    assert 'give --backbone with --archs, or --config' in err


def test_training_steps_must_compute_the_same_loss():
    measure_steps = load_tool('train_benchmark').measure_steps
    steps = {'a': lambda: torch.tensor(1.0), 'b': lambda: torch.tensor(1.5)}
    with pytest.raises(RuntimeError, match="b: first loss 1.5 differs"):
        measure_steps(steps, repeat=1, warmup=1, memory=False)
    result = measure_steps(steps, repeat=1, warmup=1, memory=False,
                           unchecked=('b', ))
    assert result['b']['loss'] == 1.5 and result['a']['peak_bytes'] is None


def test_amp_setting_runs_the_forward_in_bfloat16():
    """``amp``: forward and loss under bfloat16 autocast, float32 weights
    and gradients; other settings stay float32."""
    make_step = load_tool('train_benchmark').make_step
    seen = []
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1))
    model.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    for setting in ('amp', 'eager', 'channels_last+amp'):
        step = make_step(model, setting, (8, 8), 2, torch.device('cpu'))
        loss = step()
        assert torch.isfinite(loss)
        weight = step.model[0].weight
        assert weight.dtype == weight.grad.dtype == torch.float32
    assert seen == [torch.bfloat16, torch.float32, torch.bfloat16]


def test_peer_benchmark_finds_and_imports_official_code(tmp_path, capsys):
    """The official model files are found one folder below the root and
    imported as a package (relative imports work); a missing checkout is
    named with the repository to clone."""
    peers = load_tool('peer_benchmark')
    model_dir = tmp_path / 'clone' / 'EfficientViT' / 'classification' / \
        'model'
    model_dir.mkdir(parents=True)
    (model_dir / 'efficientvit.py').write_text('WIDTH = 7\n')
    (model_dir / 'build.py').write_text(
        'from .efficientvit import WIDTH\nDOUBLE = 2 * WIDTH\n')
    module = peers.import_official(str(tmp_path), 'efficientvit')
    assert module.DOUBLE == 14
    assert module.__name__ == 'mmvit_official_efficientvit.build'
    with pytest.raises(FileNotFoundError,
                       match='clone https://github.com/huawei-noah/'
                       'Efficient-AI-Backbones there'):
        peers.find_official(str(tmp_path), 'cmt')
    tool = load_tool('peer_benchmark')
    with pytest.raises(SystemExit):
        tool.main(['--official-root', str(tmp_path / 'missing')])
    assert 'no such folder' in capsys.readouterr().err


def test_peer_benchmark_variants_of_several_families():
    """``--archs`` qualified as ``family:arch`` picks one family's variant;
    an unqualified one applies to every family; unknown ones are named."""
    from argparse import Namespace
    peers = load_tool('peer_benchmark')

    def variants(families, archs):
        return list(peers._variants(Namespace(families=families,
                                              archs=archs)))

    assert variants(['cas_vit', 'cmt'], ['cas_vit:xs', 'cmt:ti']) == [
        ('cas_vit', 'xs'), ('cmt', 'ti')]
    assert variants(['cas_vit', 'cmt'], ['xs']) == [('cas_vit', 'xs'),
                                                    ('cmt', 'xs')]
    assert variants(['efficientvit'], None)[0] == ('efficientvit', 'm0')
    with pytest.raises(SystemExit, match="cmt has no variant 'm0'"):
        variants(['cmt'], ['m0'])
    with pytest.raises(SystemExit, match='cmt:ti names a family not in'):
        variants(['cas_vit'], ['cmt:ti'])


def test_gpu_check_needs_cuda(capsys):
    tool = load_tool('gpu_check')
    if torch.cuda.is_available():
        pytest.skip('a GPU is present: test_gpu_check_passes runs instead')
    assert tool.main([]) == 2
    assert 'CUDA is not available' in capsys.readouterr().out


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_gpu_check_passes(capsys):
    """mmcv's CUDA ops, an AMP step of every family, GPU paths equal to
    the CPU's; throughput at a small batch (the full batches are the
    tool's defaults)."""
    tool = load_tool('gpu_check')
    status = tool.main(['--batches', '8'])
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert printed.count(': OK') == 4


def test_whole_models_rows_and_table():
    """The rows (mmdet's / mmseg's R-50 configs first, then each variant's
    four heads) and the rendering: ratios to R-50, failures as notes."""
    wm = load_tool('model_zoo')
    rows = wm.rows_to_measure([('efficientvit', 'm0')],
                              osp.join(ROOT, 'configs'))
    assert rows[0][0] == 'ResNet-50 (mmdet / mmseg)'
    assert all(osp.isfile(p) for p in rows[0][1].values())
    assert rows[1][0] == 'EfficientViT m0' and set(rows[1][1]) == \
        set(wm.HEADS)
    measured = [
        (rows[0][0], {h: ((100.0, 90.0, 120.0), 50.0) for h in wm.HEADS}),
        (rows[1][0], {'retinanet': ((40.0, 39.0, 41.0), 20.0),
                      'mask_rcnn': RuntimeError('out of memory')})]
    text = wm.render_whole_models(measured, 2, 3, 1, torch.device('cpu'),
                                  False)
    header, (cells, ) = table_rows(text, 'EfficientViT m0')
    assert header[1] == 'RetinaNet @800x1344: CPU ms / GFLOPs'
    assert cells[1:] == ['40 (0.40x) / 20', 'error [1]', '—', '—']
    assert '[1] EfficientViT m0, Mask R-CNN: RuntimeError: out of memory' \
        in text


def test_peer_inference_row_ratios():
    """The inference table's ratios on fixed medians: onnxruntime of the
    official model over mmvit's shipped route, the best peer (the fastest
    of those measured) over it, official eager over mmvit eager."""
    peers = load_tool('peer_benchmark')
    ms = {'official': 30., 'official fused': 20., 'official onnxruntime':
          10., 'mmvit': 25., 'mmvit deployed': 15., 'mmvit onnxruntime': 8.,
          'mmvit onnxruntime dynamic': 12.5}
    row = peers.inference_row('efficientvit', 'm4', 224, 1, ms,
                              {'mmvit': 1e-6, 'mmvit deployed': 2e-6,
                               'mmvit onnxruntime': 3e-6,
                               'mmvit onnxruntime dynamic': 4e-6})
    assert row[:3] == ['efficientvit m4', 224, 1]
    assert row[3:8] == ['30.0', '20.0', '-', '-', '10.0']
    assert row[8:12] == ['25.0', '15.0', '8.0', '12.5']
    assert row[12:16] == ['1.25', '1.25', '0.80', '1.20']
    assert row[16] == '1.0e-06, 2.0e-06, 3.0e-06, 4.0e-06'
    # a faster peer lowers the best-peer ratio
    ms['timm'] = 4.
    assert peers.inference_row('efficientvit', 'm4', 224, 2, ms,
                               {})[13:17] == ['0.50', '0.80', '1.20', '-']
