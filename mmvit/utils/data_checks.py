"""Checks of a config's data, with errors that name the file or folder at
fault.

The libraries' own errors for a broken annotation file (a bare JSON
position), an annotation file without images (``need at least one array to
concatenate``) or an empty image folder (a silent zero-length loop) do not
say which file or folder is wrong; these checks do. The tools run the cheap
ones (files and folders exist, folders hold images) before a run and parse
annotation files only when the run has failed (:func:`data_errors_explained`),
so a healthy run reads its annotations once.
"""
import json
import os
import os.path as osp
import re
from contextlib import contextmanager

_LOADERS = {
    'train': 'train_dataloader',
    'val': 'val_dataloader',
    'test': 'test_dataloader',
}
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def _join(root, path):
    if not path or osp.isabs(path) or not root:
        return path
    return osp.join(root, path)


def _datasets(cfg):
    """The leaf dataset configs under wrappers (Repeat/Concat/...)."""
    if cfg is None:
        return []
    if 'datasets' in cfg:
        return [d for sub in cfg['datasets'] for d in _datasets(sub)]
    if 'dataset' in cfg:
        return _datasets(cfg['dataset'])
    return [cfg]


def check_coco_annotations(path, where, parse=True):
    """A COCO annotation file exists and (``parse``) parses and lists
    images."""
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{where}: annotation file {path!r} does not exist')
    if not parse:
        return
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f'{where}: annotation file {path!r} is not valid '
                         f'JSON ({err})') from None
    if not isinstance(data, dict) or not isinstance(data.get('images'),
                                                    list):
        raise ValueError(f'{where}: annotation file {path!r} has no '
                         '"images" list (not a COCO-format file)')
    if not data['images']:
        raise ValueError(f'{where}: empty dataset: annotation file {path!r} '
                         'lists no images')
    for key in ('annotations', 'categories'):
        if not isinstance(data.get(key), list):
            raise ValueError(f'{where}: annotation file {path!r} has no '
                             f'"{key}" list (not a COCO-format file)')


def check_image_folder(path, where, suffix=None):
    """A folder exists and holds at least one image file."""
    if not osp.isdir(path):
        raise FileNotFoundError(f'{where}: image folder {path!r} does not '
                                'exist')
    suffixes = (suffix, ) if suffix else IMAGE_SUFFIXES
    for _, _, files in os.walk(path):
        if any(f.lower().endswith(suffixes) for f in files):
            return
    raise ValueError(f'{where}: empty dataset: no {"/".join(suffixes)} '
                     f'files under {path!r}')


def check_data(cfg, splits=('train', 'val'), parse=True):
    """Check the datasets of the given dataloaders of ``cfg``; without
    ``parse``, annotation files are only checked to exist."""
    for split in splits:
        loader = cfg.get(_LOADERS[split])
        if not loader:
            continue
        for index, dataset in enumerate(_datasets(loader.get('dataset'))):
            where = f'{_LOADERS[split]}.dataset' + (f'[{index}]'
                                                    if index else '')
            if dataset.get('type') == 'ImageNet':
                continue  # mmpretrain checks its own folders
            root = dataset.get('data_root', '')
            prefix = dataset.get('data_prefix') or {}
            ann_file = dataset.get('ann_file', '')
            if ann_file and str(ann_file).endswith('.json'):
                check_coco_annotations(_join(root, ann_file), where, parse)
            elif 'img_path' in prefix:  # mmseg layout: image folders
                check_image_folder(
                    _join(root, prefix['img_path']), where,
                    dataset.get('img_suffix'))


_MISSING = re.compile(r"No such file or directory: '([^']+)'")
_UNREADABLE = re.compile(r'failed to load image: (\S+)')


def _image_folders(cfg, splits):
    """(dataloader name, image folder) of the datasets of ``splits``."""
    for split in splits:
        loader = cfg.get(_LOADERS[split])
        for dataset in _datasets((loader or {}).get('dataset')):
            prefix = dataset.get('data_prefix') or {}
            folder = prefix.get('img') or prefix.get('img_path') or ''
            root = dataset.get('data_root', '')
            if folder or root:
                yield _LOADERS[split], _join(root, folder), dataset


def image_error(err, cfg, splits):
    """A clear error for a missing or undecodable image behind ``err`` (also
    when it was raised in a dataloader worker), or None."""
    text = str(err)
    missing, unreadable = _MISSING.search(text), _UNREADABLE.search(text)
    match = missing or unreadable
    if match is None:
        return None
    path = match.group(1)
    if not path.lower().endswith(IMAGE_SUFFIXES):
        return None
    where = ''
    for loader, folder, dataset in _image_folders(cfg, splits):
        if folder and osp.abspath(path).startswith(osp.abspath(folder)):
            ann = dataset.get('ann_file')
            where = f'{loader}.dataset' + (
                f' (listed in {_join(dataset.get("data_root", ""), ann)})'
                if ann else '')
            break
    what = ('does not exist' if missing else
            'cannot be decoded (a damaged or truncated file, or not an image)')
    error = (FileNotFoundError if missing else ValueError)(
        f'{where or "dataset"}: image {path!r} {what}; restore the file or '
        'remove it from the dataset')
    return error


@contextmanager
def data_errors_explained(cfg, splits):
    """Run the cheap checks, then the body (a training or a test); if the
    body fails and the full checks find the data at fault, raise their error
    (naming the file) from the original one; a missing or damaged image is
    named with the dataset it belongs to."""
    check_data(cfg, splits, parse=False)
    try:
        yield
    except Exception as err:
        try:
            check_data(cfg, splits)
        except (FileNotFoundError, ValueError) as data_err:
            raise data_err from err
        explained = image_error(err, cfg, splits)
        if explained is not None:
            raise explained from err
        raise
