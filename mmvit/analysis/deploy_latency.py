"""Latency of a whole model exported to ONNX: PyTorch (eval and deployed)
against onnxruntime, interleaved in one run (``tools/deployment/
pytorch2onnx.py CONFIG --benchmark``)."""
import copy
import os.path as osp
import time

import torch

from .benchmark import summarize


def latency_end_to_end(cfg, models, onnx_file, image, repeat=10, warmup=2,
                       threads=None):
    """Milliseconds (median, min, max) of one image's prediction from its
    preprocessed input: each PyTorch model of ``models`` ({name: model},
    ``predict``) and onnxruntime (graph plus the per-image steps of
    :class:`~mmvit.export.predictor.OnnxPredictor`), interleaved in every
    repeat."""
    from mmvit.export.predictor import OnnxPredictor
    predictor = OnnxPredictor(cfg, onnx_file, threads)
    inputs, samples = predictor.preprocess(image)
    runs = {name: (lambda m=model: m.predict(inputs,
                                             copy.deepcopy(samples)))
            for name, model in models.items()}
    runs['onnxruntime'] = lambda: predictor.run(inputs,
                                                copy.deepcopy(samples))
    times = {name: [] for name in runs}
    with torch.no_grad():
        for i in range(warmup + repeat):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                if i >= warmup:
                    times[name].append(time.perf_counter() - start)
    return {name: summarize(t) for name, t in times.items()}, \
        tuple(inputs.shape[2:])


def print_latency(times, image, size, threads, repeat):
    """Print :func:`latency_end_to_end`'s numbers, each with its ratio to
    PyTorch's eval model."""
    print(f'latency of one image ({osp.basename(image)}, input '
          f'{size[0]}x{size[1]}, {threads or "default"} threads, median '
          f'(min-max) of {repeat}, interleaved):')
    base = times['PyTorch eval'][0]
    for name, (median, low, high) in times.items():
        print(f'  {name:17s} {median:9.1f} ms ({low:.1f}-{high:.1f})  '
              f'{base / median:.2f}x')
