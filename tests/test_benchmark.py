"""The benchmark and model-zoo tools run and report what they say they do."""
import importlib.util
import math
import os.path as osp

import pytest
import torch
from conftest import ROOT, run_tool, config_file


def load_tool(name):
    """tools/analysis/<name>.py as a module (tools/ is not a package)."""
    path = osp.join(ROOT, 'tools', 'analysis', f'{name}.py')
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


def test_benchmark_table(tmp_path):
    out = tmp_path / 'table.md'
    proc = run_tool(['tools/analysis/benchmark.py', '--backbone',
                     'EfficientViT', '--archs', 'm0', '--sizes', '64', '96',
                     '--repeat', '2', '--warmup', '0', '--threads', '1',
                     '--out', str(out), '--plot', str(tmp_path / 'p.png')])
    header, rows = table_rows(out.read_text(), 'm0')
    assert len(rows) == 1
    cells = rows[0]
    # variant, params (M), GFLOPs at 224 (the spec counts 80.8 M
    # multiply-adds for the classifier, 0.2 M of them in its head), two
    # latencies, images per second, peak memory, the latency ratio
    assert header == ['variant', 'params (M)', 'GFLOPs @224x224',
                      '64x64 ms (min-max)', '96x96 ms (min-max)',
                      'img/s @64x64', 'peak MiB @96x96',
                      't(96x96)/t(64x64)']
    assert cells[1] == '2.16'
    assert cells[2] == '0.081'
    assert float(cells[5]) > 0 and float(cells[7]) > 0
    assert float(cells[6]) > 0  # activations of a 96x96 forward
    assert (tmp_path / 'p.png').stat().st_size > 1000
    assert 'EfficientViT, eval forward, batch 1, cpu, 1 threads' in proc.stdout


def test_benchmark_config_rectangle_channels_last(tmp_path):
    """A whole detector from its config, at a rectangular size (height x
    width), channels-last; its parameters are those of the model the
    config builds."""
    config = 'configs/efficientvit/retinanet_efficientvit_m0.py'
    out = tmp_path / 'table.md'
    proc = run_tool(['tools/analysis/benchmark.py', '--config', config,
                     '--sizes', '128x160', '--flops-size', '128', '160',
                     '--channels-last', '--no-memory', '--repeat', '2',
                     '--warmup', '0', '--threads', '1', '--out', str(out)])
    header, rows = table_rows(out.read_text(), 'retinanet_efficientvit_m0')
    assert header == ['model', 'params (M)', 'GFLOPs @128x160',
                      '128x160 ms (min-max)', 'img/s @128x160']
    assert len(rows) == 1
    assert 'channels-last' in proc.stdout

    import mmvit  # noqa: F401
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    model = MODELS.build(Config.fromfile(osp.join(ROOT, config)).model)
    expected = sum(p.numel() for p in model.parameters())
    assert f'retinanet_efficientvit_m0: {expected} parameters' in proc.stdout
    assert rows[0][1] == f'{expected / 1e6:.2f}'
    # The backbone alone costs 0.081 G at 224x224; the detector's 256-wide
    # heads at stride 8 and up cost far more, even on 128x160.
    assert 1 < float(rows[0][2]) < 10
    assert float(rows[0][3].split()[0]) > 0


def test_benchmark_bad_arguments(capsys, keep_threads):
    from mmvit.analysis import benchmark as lib
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


def test_model_zoo_table_and_readme(tmp_path):
    readme = tmp_path / 'README.md'
    readme.write_text('# Title\n\nIntro.\n\n<!-- model-zoo:start -->\n'
                      'old table\n<!-- model-zoo:end -->\n\nAfter.\n')
    out = tmp_path / 'zoo.md'
    run_tool(['tools/analysis/model_zoo.py', '--families', 'efficientvit',
              '--variants', 'm0', '--sizes', '64', '64x96', '--repeat', '1',
              '--warmup', '0', '--threads', '1', '--det-size', '128x160',
              '--out', str(out), '--readme', str(readme)])
    markdown = out.read_text()
    header, rows = table_rows(markdown, 'EfficientViT m0')
    assert len(rows) == 1
    cells = dict(zip(header, rows[0]))
    assert cells['backbone params (M)'] == '2.16'
    assert cells['backbone GFLOPs @224x224'] == '0.081'
    assert float(cells['CPU ms @64x96'].split()[0]) > 0
    params, flops = cells['RetinaNet params (M) / GFLOPs @128x160'].split(
        ' / ')
    assert params == '11.8' and float(flops) > 1
    assert cells['Mask R-CNN params (M) / GFLOPs @128x160'] != 'error'
    assert cells['paper: ImageNet-1K top-1'] == '63.2'
    assert cells['paper: RetinaNet 1x box AP'] == '—'
    assert 'Mask R-CNN proposals at 128x160: EfficientViT m0 ' in markdown
    assert '1 threads' in markdown and 'torch ' in markdown

    text = readme.read_text()
    assert 'old table' not in text
    assert text.startswith('# Title\n\nIntro.\n\n<!-- model-zoo:start -->\n')
    assert text.endswith('<!-- model-zoo:end -->\n\nAfter.\n')
    assert markdown.strip() in text


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
    from mmvit.analysis.model_zoo import render
    markdown = render(rows, zoo.parse_args(
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


def test_train_benchmark_reports_time_and_memory(capsys, keep_threads):
    """Training steps per setting: the same first loss (checked inside),
    times, and with_cp's smaller peak memory."""
    tool = load_tool('train_benchmark')
    assert tool.main(['--backbone', 'CastlingViT', '--archs', 'xs',
                      '--size', '64', '--batch', '2', '--settings', 'eager',
                      'with_cp', 'channels_last+fused_adamw', '--repeat',
                      '2', '--threads', str(keep_threads)]) == 0
    header, rows = table_rows(capsys.readouterr().out, 'xs')
    assert header[2] == 'step ms @64x64 (min-max)'
    assert [row[1] for row in rows] == ['eager', 'with_cp',
                                        'channels_last+fused_adamw']
    memory = {row[1]: float(row[5]) for row in rows}
    assert memory['eager'] == 1.0 and memory['with_cp'] < 0.8
    assert all(float(row[3]) > 0 for row in rows)
    with pytest.raises(SystemExit):
        tool.main(['--backbone', 'CASViT', '--archs', 'xs', '--settings',
                   'eager', 'eager'])
    with pytest.raises(SystemExit):
        tool.main(['--backbone', 'CASViT', '--archs', 'xs', '--settings',
                   'eager', 'compile+fast'])
    assert "unknown setting 'fast'" in capsys.readouterr().err


@pytest.mark.parametrize('config', [
    'retinanet_cas_vit_xs.py', 'mask_rcnn_efficientvit_m0.py',
    'upernet_cmt_ti.py', 'imagenet_cmt_ti.py'])
def test_config_train_steps_learn_on_a_synthetic_batch(config):
    """A config's whole train step (what a runner calls per iteration) on a
    synthetic batch of its library's ground truth: a finite loss that the
    config's optimizer lowers on the same batch."""
    from mmvit.analysis.train_benchmark import (ModelTrainStep,
                                                config_training)
    losses = []
    real = ModelTrainStep.__call__
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ModelTrainStep, '__call__',
                      lambda self: losses.append(real(self)) or losses[-1])
        result = config_training(config_file(config), ['eager'], (96, 128),
                                 batch=2, repeat=3, warmup=1, memory=False)
    assert math.isfinite(result['eager']['loss'])
    assert result['eager']['ms'][0] > 0
    assert len(losses) == 4 and losses[-1] < losses[0], losses


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
    from mmvit.analysis.train_benchmark import measure_steps
    steps = {'a': lambda: torch.tensor(1.0), 'b': lambda: torch.tensor(1.5)}
    with pytest.raises(RuntimeError, match="b: first loss 1.5 differs"):
        measure_steps(steps, repeat=1, warmup=1, memory=False)
    result = measure_steps(steps, repeat=1, warmup=1, memory=False,
                           unchecked=('b', ))
    assert result['b']['loss'] == 1.5 and result['a']['peak_bytes'] is None


def test_amp_setting_runs_the_forward_in_bfloat16():
    """``amp``: forward and loss under bfloat16 autocast, float32 weights
    and gradients; other settings stay float32."""
    from mmvit.analysis.train_benchmark import make_step
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
    from mmvit.analysis import peers
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

    from mmvit.analysis import peers

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
    from mmvit.analysis import whole_models as wm
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
    text = wm.render(measured, 2, 3, 1, torch.device('cpu'), False)
    header, (cells, ) = table_rows(text, 'EfficientViT m0')
    assert header[1] == 'RetinaNet @800x1344: CPU ms / GFLOPs'
    assert cells[1:] == ['40 (0.40x) / 20', 'error [1]', '—', '—']
    assert '[1] EfficientViT m0, Mask R-CNN: RuntimeError: out of memory' \
        in text


class _FakeCompiled(torch.nn.Module):
    """Stands in for torch.compile's wrapper (``_orig_mod``), optionally
    scaling the outputs by ``1 + error``."""

    def __init__(self, module, error):
        super().__init__()
        self._orig_mod, self.error = module, error

    def forward(self, x):
        return tuple(o * (1 + self.error) for o in self._orig_mod(x))


@pytest.mark.parametrize('error', [0., 1e-2])
def test_benchmark_compares_compiled_models(error, tmp_path, monkeypatch,
                                            keep_threads):
    """--compare-compile times torch.compile of the eval model next to it,
    with a speed-up column, after checking their outputs (a compile that
    changes them by more than 1e-4 fails its row). torch.compile itself is
    replaced here: compiling takes minutes on this CPU."""
    calls = []

    def fake_compile(module, **kwargs):
        calls.append(kwargs)
        return _FakeCompiled(module, error)

    monkeypatch.setattr(torch, 'compile', fake_compile)
    bench = load_tool('benchmark')
    out = tmp_path / 'table.md'
    status = bench.main(['--backbone', 'EfficientViT', '--archs', 'm0',
                         '--sizes', '64', '96', '--repeat', '1', '--warmup',
                         '0', '--no-memory', '--no-malloc-tuning',
                         '--threads', str(keep_threads), '--flops-size', '0',
                         '--compare-compile', '--out', str(out)])
    assert calls == [dict(dynamic=False)]
    text = out.read_text()
    if error:
        assert status == 1
        assert 'm0 [failed]' in text
        assert 'torch.compile changed the outputs (max relative ' \
            'difference 1.0e-02 > 0.0001)' in text
        return
    assert status == 0
    header, rows = table_rows(text, 'm0 compiled')
    assert header[-1] == 'compile speed-up @96x96'
    assert float(rows[0][-1]) > 0
    assert rows[0][1] == '2.16'  # the parameters of the wrapped model
    assert table_rows(text, 'm0')[1][0][-1] == ''
    assert 'max relative difference: m0 0.0e+00' in text


def test_peer_inference_row_ratios():
    """The inference table's ratios on fixed medians: onnxruntime of the
    official model over mmvit's shipped route, the best peer (the fastest
    of those measured) over it, official eager over mmvit eager."""
    from mmvit.analysis import peers
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
