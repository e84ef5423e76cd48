"""``torch.load`` that never runs code from a checkpoint file.

torch >= 2.6 loads with ``weights_only=True`` by default; mmengine's
checkpoints also hold its ``HistoryBuffer`` (numpy arrays inside) and official
classification checkpoints often hold an ``argparse.Namespace``. These plain
data types are allow-listed once here, so every load in the suite can stay
``weights_only=True`` and a file whose unpickling would call anything else is
refused.
"""
import argparse
import os
import pickle

import numpy as np
import torch

_REGISTERED = False


def _numpy_globals():
    """Numpy objects that mmengine's message hub pickles (arrays, scalars)."""
    try:  # numpy >= 2
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    objs = [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype]
    objs += [type(np.dtype(t)) for t in (
        'float16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64',
        'uint8', 'bool')]
    return objs


_HISTORY_METHODS = ('min', 'max', 'current', 'mean')


def _history_buffer_getattr(obj, name, *default):
    """Stand-in for ``builtins.getattr`` inside checkpoints.

    ``HistoryBuffer.__getstate__`` pickles its statistics methods as
    ``getattr(HistoryBuffer, 'min')``; this resolves exactly those and
    refuses any other attribute, so allowing it does not open ``getattr`` to
    arbitrary objects.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and name in _HISTORY_METHODS:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'refused getattr({obj!r}, {name!r}) while loading a checkpoint')


def register_safe_globals():
    """Allow-list the plain data types found in mmengine/official files."""
    global _REGISTERED
    if _REGISTERED:
        return
    from mmengine.logging.history_buffer import HistoryBuffer
    torch.serialization.add_safe_globals(
        [argparse.Namespace, HistoryBuffer,
         (_history_buffer_getattr, 'builtins.getattr')] + _numpy_globals())
    _REGISTERED = True


def load_local_checkpoint(filename, map_location=None):
    """mmengine's ``CheckpointLoader`` scheme for local paths, through
    :func:`safe_torch_load` (registered by :mod:`mmvit.engine`, which every
    run with mmvit hooks imports; ``import mmvit`` alone does not import
    mmengine's runner)."""
    return safe_torch_load(os.path.expanduser(filename), map_location)


def safe_torch_load(path, map_location='cpu', mmap=False):
    """Load ``path`` with ``weights_only=True`` and explain every failure
    (``mmap``: map the tensors' storage instead of reading it).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        RuntimeError: the file is not a checkpoint (corrupted, truncated) or
            unpickling it would execute code that is not allow-listed.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint file {path!r} does not exist')
    register_safe_globals()
    try:
        return torch.load(path, map_location=map_location, weights_only=True,
                          mmap=mmap or None)
    except pickle.UnpicklingError as err:
        raise RuntimeError(
            f'refused to load checkpoint {path!r}: unpickling it would '
            f'execute code or build objects that are not plain tensors and '
            f'data (weights_only=True). Only load files you trust with full '
            f'unpickling. Details: {err}') from None
    except (EOFError, RuntimeError, ValueError) as err:
        raise RuntimeError(
            f'cannot read checkpoint {path!r}: the file is corrupted, '
            f'truncated or not a PyTorch checkpoint ({err})') from None
