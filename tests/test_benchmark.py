"""The benchmark tool runs and reports what it says it does."""
from conftest import run_tool


def test_benchmark_table(tmp_path):
    out = tmp_path / 'table.md'
    proc = run_tool(['tools/analysis/benchmark.py', '--backbone',
                     'EfficientViT', '--archs', 'm0', '--sizes', '64', '96',
                     '--repeat', '2', '--warmup', '0', '--threads', '1',
                     '--out', str(out), '--plot', str(tmp_path / 'p.png')])
    rows = [line for line in out.read_text().splitlines()
            if line.startswith('| m0 ')]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip('|').split('|')]
    # variant, params (M), GFLOPs at 224 (the spec counts 80.8 M
    # multiply-adds for the classifier, 0.2 M of them in its head), two
    # latencies, images per second, the latency ratio
    assert len(cells) == 7
    assert cells[1] == '2.16'
    assert cells[2] == '0.081'
    assert float(cells[5]) > 0 and float(cells[6]) > 0
    assert (tmp_path / 'p.png').stat().st_size > 1000
    assert 'EfficientViT, eval forward, batch 1, cpu, 1 threads' in proc.stdout
