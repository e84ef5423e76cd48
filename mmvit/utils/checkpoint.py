"""Reading checkpoints: mmengine's ``CheckpointLoader`` for every file,
``torch.hub`` for downloads with hash checks, ``weights_only`` loading.

torch >= 2.6 loads with ``weights_only=True``; mmengine's checkpoints also
hold its ``HistoryBuffer`` (numpy arrays inside) and official classification
checkpoints an ``argparse.Namespace``. Those plain data types are
allow-listed once (:func:`register_safe_globals`, on ``import mmvit``), so a
file whose unpickling would call anything else is refused.
"""
import argparse
import hashlib
import os
import os.path as osp
import pickle
import re
import zipfile
from urllib.parse import urlparse

import torch

_HISTORY_METHODS = ('min', 'max', 'current', 'mean')


def _history_buffer_getattr(obj, name, *default):
    """Stand-in for ``builtins.getattr`` inside checkpoints:
    ``HistoryBuffer`` pickles its statistics methods as
    ``getattr(HistoryBuffer, 'min')``; any other attribute is refused."""
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and name in _HISTORY_METHODS:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'refused getattr({obj!r}, {name!r}) while loading a checkpoint')


def register_safe_globals():
    """Allow-list the plain data types of mmengine's and official files."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer
    try:  # numpy >= 2
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    dtypes = [type(np.dtype(t)) for t in (
        'float16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64',
        'uint8', 'bool')]
    torch.serialization.add_safe_globals(
        [argparse.Namespace, HistoryBuffer,
         (_history_buffer_getattr, 'builtins.getattr'), multiarray._reconstruct,
         multiarray.scalar, np.ndarray, np.dtype, *dtypes])


def checkpoint_error(path, err):
    """The error to raise for ``err``, raised while reading checkpoint
    ``path``: it names the file and says why."""
    if isinstance(err, pickle.UnpicklingError):
        return RuntimeError(
            f'refused to load checkpoint {path!r}: unpickling it would '
            'execute code or build objects that are not plain tensors and '
            'data (weights_only=True). Only load files you trust with full '
            f'unpickling. Details: {err}')
    return RuntimeError(
        f'cannot read checkpoint {path!r}: the file is corrupted, truncated '
        f'or not a PyTorch checkpoint ({type(err).__name__}: {err})')


def checkpoint_problem(path):
    """Why ``path`` is not a complete checkpoint (a sentence), or None.
    Zip files (``torch.save``'s format) are checked entry by entry against
    their CRCs, others by loading them."""
    if not osp.isfile(path):
        return 'the file does not exist'
    if osp.getsize(path) == 0:
        return 'the file is empty'
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            return f'the zip archive is damaged ({err})'
        return None if bad is None else f'the entry {bad!r} is damaged'
    try:
        torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:
        return f'it cannot be loaded ({type(err).__name__}: {err})'
    return None


def is_url(path):
    return bool(re.match(r'^[a-z][a-z0-9+]*://', str(path)))


def known_sha256(url):
    """The index's SHA-256 of ``url`` (metafile ``SHA256``), else the torch
    hub naming convention's prefix (``name-<hex>.pth``), or None."""
    from mmvit.families import families
    for fam in families().values():
        for model in fam.models:
            if model.get('Weights') == url and model.get('SHA256'):
                return model['SHA256'].lower()
    match = re.search(r'-([0-9a-f]{8,64})\.[a-z]+$', urlparse(url).path)
    return match.group(1) if match else None


def download(url, sha256=None):
    """The path of ``url``'s file in the torch hub cache, downloaded once by
    ``torch.hub.download_url_to_file`` (hash checked when known). A file
    that arrives incomplete is not cached."""
    dest = osp.join(torch.hub.get_dir(), 'checkpoints',
                    osp.basename(urlparse(url).path))
    expected = sha256 or known_sha256(url)
    if osp.isfile(dest):
        if expected:
            with open(dest, 'rb') as f:
                digest = hashlib.file_digest(f, 'sha256').hexdigest()
            if not digest.startswith(expected.lower()):
                raise RuntimeError(
                    f'cached {dest} (from {url}): SHA-256 {digest} does not '
                    f'match {expected}; delete it to download it again')
        return dest
    os.makedirs(osp.dirname(dest), exist_ok=True)
    partial = f'{dest}.{os.getpid()}.partial'
    try:
        torch.hub.download_url_to_file(url, partial, hash_prefix=expected,
                                       progress=False)
        problem = checkpoint_problem(partial) if dest.endswith(
            ('.pth', '.pt')) else None
        if problem:  # without a hash, a server that stops is seen here
            raise RuntimeError(f'the file arrived incomplete: {problem}')
        os.replace(partial, dest)
    except Exception as err:
        raise RuntimeError(f'downloading {url} failed ({type(err).__name__}:'
                           f' {err}); nothing was cached') from None
    finally:
        if osp.exists(partial):
            os.remove(partial)
    return dest


def _where_to_get(path):
    """The index's note on where to get a missing official file."""
    from mmvit.families import families
    name = osp.basename(path)
    for fam in families().values():
        if name.startswith(fam.key + '_') and fam.weights_note:
            return f' ({fam.name}: {fam.weights_note})'
    return ''


def read_checkpoint(path, map_location='cpu', sha256=None):
    """A checkpoint as mmengine's ``CheckpointLoader`` reads it (a URL is
    downloaded first, ``.safetensors`` read by safetensors); errors name the
    file."""
    path = str(path)
    if is_url(path):
        path = download(path, sha256)
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint file {path!r} does not exist'
                                + _where_to_get(path))
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return load_file(path, device=str(map_location))
    from mmengine.runner.checkpoint import CheckpointLoader
    try:
        return CheckpointLoader.load_checkpoint(path, map_location)
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError) as err:
        raise checkpoint_error(path, err) from None
