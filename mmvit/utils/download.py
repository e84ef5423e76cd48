"""Checkpoints by URL: downloaded once into the torch hub cache.

A download goes to a temporary file beside its destination and is renamed
into place only when complete (its size the server's ``Content-Length``)
and, when a hash is known, verified; on any failure nothing is left in the
cache. Known hashes: the ``sha256`` argument, else the model index's (the
metafiles' ``Weights`` with ``SHA256``), else the torch hub naming
convention (``name-<first hex digits of the SHA-256>.pth``).
"""
import hashlib
import os
import os.path as osp
import re
import urllib.error
import urllib.request
from urllib.parse import urlparse

_CHUNK = 1 << 20


def is_url(path):
    return bool(re.match(r'^[a-z][a-z0-9+]*://', str(path)))


def cache_dir():
    """``$TORCH_HOME/hub/checkpoints`` (torch's cache of downloaded
    weights)."""
    import torch
    return osp.join(torch.hub.get_dir(), 'checkpoints')


def known_sha256(url):
    """The index's SHA-256 of ``url``, or its hub-convention prefix, or
    None."""
    from mmvit.families import families
    for fam in families().values():
        for model in fam.models:
            if model.get('Weights') == url and model.get('SHA256'):
                return model['SHA256'].lower()
    match = re.search(r'-([0-9a-f]{8,64})\.[a-z]+$', urlparse(url).path)
    return match.group(1) if match else None


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(_CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def _check_hash(digest, expected, what):
    if expected and not digest.startswith(expected.lower()):
        raise RuntimeError(
            f'{what}: SHA-256 {digest} does not match the expected '
            f'{expected}; the file is damaged or not the one published')


def download_checkpoint(url, sha256=None, directory=None, timeout=60):
    """The local path of ``url``'s file, downloaded if it is not cached.

    Args:
        url (str): an http(s) or file URL.
        sha256 (str, optional): its SHA-256 (or a prefix of it); by default
            :func:`known_sha256`.
        directory (str, optional): the cache folder (default
            :func:`cache_dir`).
        timeout (float): seconds without data before giving up.
    """
    directory = directory or cache_dir()
    name = osp.basename(urlparse(url).path)
    if not name:
        raise ValueError(f'{url}: the URL names no file')
    dest = osp.join(directory, name)
    expected = sha256 or known_sha256(url)
    if osp.isfile(dest):
        _check_hash(file_sha256(dest), expected,
                    f'cached {dest} (from {url}; delete it to download '
                    'again)')
        return dest
    os.makedirs(directory, exist_ok=True)
    tmp = f'{dest}.{os.getpid()}.partial'
    received, size = 0, None
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, \
                open(tmp, 'wb') as out:
            length = response.headers.get('Content-Length')
            size = int(length) if length else None
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
        if size is not None and received != size:
            raise RuntimeError(f'the server sent {received} of {size} bytes')
        _check_hash(digest.hexdigest(), expected, f'download of {url}')
    except Exception as error:
        if osp.exists(tmp):
            os.remove(tmp)
        if isinstance(error, RuntimeError) and 'SHA-256' in str(error):
            raise
        total = f' of {size}' if size is not None else ''
        raise RuntimeError(
            f'downloading {url} failed after {received}{total} bytes: '
            f'{type(error).__name__}: {error}. Nothing was written to '
            f'{directory}; try again, or download the file yourself and '
            'pass its local path.') from None
    os.replace(tmp, dest)
    return dest
