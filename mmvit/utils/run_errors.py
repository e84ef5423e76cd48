"""Errors of a run that name the file at fault.

mmengine reads ``load_from`` with ``torch.load``, whose error for a damaged
or hostile file does not say which file; pycocotools' error for a broken
annotation file is a bare JSON position, and a decode failure in a
dataloader worker names no dataset. :func:`errors_explained` wraps a run
(nothing is checked beforehand) and, when the run fails, re-raises such an
error with the file and the dataloader named.
"""
import json
import os
import os.path as osp
import pickle
import re
from contextlib import contextmanager

from mmvit.utils.checkpoint import checkpoint_error

LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
_MISSING = re.compile(r"No such file or directory: '([^']+)'")
_UNREADABLE = re.compile(r'failed to load image: (\S+)')
_EMPTY_BUFFER = '!buf.empty()'


def _leaves(dataset):
    """The dataset configs under wrappers (Repeat/Concat/...)."""
    if not dataset:
        return []
    if 'datasets' in dataset:
        return [d for sub in dataset['datasets'] for d in _leaves(sub)]
    return _leaves(dataset['dataset']) if 'dataset' in dataset else [dataset]


def _join(root, path):
    return path if not path or not root or osp.isabs(path) else \
        osp.join(root, path)


def datasets(cfg, loaders=LOADERS):
    """(dataloader name, dataset config) of the datasets of ``loaders``."""
    for loader in loaders:
        for dataset in _leaves((cfg.get(loader) or {}).get('dataset')):
            yield loader, dataset


def annotation_problem(path):
    """Why the COCO annotation file ``path`` cannot serve, or None."""
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return f'is not valid JSON ({err})'
    if not isinstance(data, dict) or not all(isinstance(
            data.get(k), list) for k in ('images', 'annotations',
                                         'categories')):
        return 'has no "images", "annotations" and "categories" lists ' \
            '(not a COCO-format file)'
    return None if data['images'] else 'lists no images (empty dataset)'


def _has_images(folder):
    return any(name.lower().endswith(IMAGE_SUFFIXES)
               for _, _, names in os.walk(folder) for name in names)


def _listed_images(dataset):
    """(image path, annotation file or None) of the images ``dataset``
    lists: its COCO file's images, or the files of its image folder."""
    root = dataset.get('data_root', '')
    prefix = dataset.get('data_prefix') or {}
    folder = _join(root, prefix.get('img') or prefix.get('img_path') or '')
    ann = _join(root, dataset.get('ann_file', ''))
    if ann.endswith('.json') and osp.isfile(ann):
        with open(ann, encoding='utf-8') as f:
            for image in json.load(f).get('images', ()):
                yield osp.join(folder, image['file_name']), ann
    elif folder and osp.isdir(folder):
        for top, _, names in os.walk(folder):
            for name in sorted(names):
                yield osp.join(top, name), None


def _empty_image(cfg, loaders):
    """The error naming the first empty (0-byte) image of the data sets of
    ``loaders``, or None."""
    for loader, dataset in datasets(cfg, loaders):
        for image, ann in _listed_images(dataset):
            if osp.isfile(image) and osp.getsize(image) == 0:
                where = f'{loader}.dataset' + (f' (listed in {ann})'
                                               if ann else '')
                return ValueError(
                    f'{where}: image {image!r} cannot be decoded: the file '
                    'is empty (0 bytes); restore it or remove it from the '
                    'dataset')
    return None


def _loading_checkpoint(traceback):
    """The file mmengine's local checkpoint loader was reading when the
    error of ``traceback`` was raised, or None."""
    while traceback is not None:
        code = traceback.tb_frame.f_code
        if code.co_name == 'load_from_local' and code.co_filename.endswith(
                osp.join('runner', 'checkpoint.py')):
            return traceback.tb_frame.f_locals.get('filename')
        traceback = traceback.tb_next
    return None


def explain(err, cfg, loaders=LOADERS):
    """The error naming the file behind ``err`` (a data set of ``loaders``),
    or None."""
    path = _loading_checkpoint(err.__traceback__)
    if path is not None and isinstance(
            err, (pickle.UnpicklingError, EOFError, RuntimeError)):
        return checkpoint_error(path, err)
    for loader, dataset in datasets(cfg, loaders):
        ann = _join(dataset.get('data_root', ''), dataset.get('ann_file', ''))
        folder = _join(dataset.get('data_root', ''),
                       (dataset.get('data_prefix') or {}).get('img_path'))
        if ann.endswith('.json') and osp.isfile(ann):
            problem = annotation_problem(ann)
            if problem:
                return ValueError(f'{loader}.dataset: annotation file '
                                  f'{ann!r} {problem}')
        elif folder and not _has_images(folder):  # mmseg's folder layout
            return ValueError(f'{loader}.dataset: empty dataset: no image '
                              f'files under {folder!r}')
    if _EMPTY_BUFFER in str(err):  # OpenCV's decoder, given 0 bytes
        return _empty_image(cfg, loaders)
    match = _MISSING.search(str(err)) or _UNREADABLE.search(str(err))
    if match is None or not match.group(1).lower().endswith(IMAGE_SUFFIXES):
        return None
    image, missing = osp.abspath(match.group(1)), match.re is _MISSING
    where = 'dataset'
    for loader, dataset in datasets(cfg, loaders):
        prefix = dataset.get('data_prefix') or {}
        folder = _join(dataset.get('data_root', ''),
                       prefix.get('img') or prefix.get('img_path') or '')
        if folder and image.startswith(osp.abspath(folder)):
            ann = dataset.get('ann_file')
            where = f'{loader}.dataset' + (
                f' (listed in {_join(dataset.get("data_root", ""), ann)})'
                if ann else '')
            break
    what = 'does not exist' if missing else \
        'cannot be decoded (a damaged or truncated file, or not an image)'
    return (FileNotFoundError if missing else ValueError)(
        f'{where}: image {match.group(1)!r} {what}; restore the file or '
        'remove it from the dataset')


@contextmanager
def errors_explained(cfg, loaders=LOADERS):
    """Run the body; if it fails, re-raise what :func:`explain` finds."""
    try:
        yield
    except Exception as err:
        explained = explain(err, cfg, loaders)
        if explained is None:
            raise
        raise explained from err
