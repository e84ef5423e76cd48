"""What tools/train.py and tools/test.py share: the work dir, the CPU
launcher, the work-dir lock, and the exception hook that names the file
behind a failed run.

mmengine reads ``load_from`` with ``torch.load``, whose error for a damaged
or hostile file does not say which file; pycocotools' error for a broken
annotation file is a bare JSON position, OpenCV's for an empty image names
no file, and a decode failure in a dataloader worker names no dataset.
:func:`errors_explained` wraps a run (nothing is checked beforehand) and,
when the run fails, re-raises such an error with the file and the
dataloader named.
"""
import json
import os
import os.path as osp
import pickle
import re
import sys
from contextlib import contextmanager

from mmvit.utils.checkpoint import checkpoint_error


def set_work_dir(cfg, work_dir, config):
    """``--work-dir``, else the config's, else ``./work_dirs/<config name>``
    (mmdet's rule)."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config))[0])


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@contextmanager
def work_dir_lock(work_dir):
    """Hold ``work_dir/.mmvit.lock`` (the holder's pid and host) while a run
    writes there; released at exit. Another run into the work dir stops,
    naming the holder; the lock of a process of this host that no longer
    runs is taken over with a message. Only the main process (rank 0)
    takes it."""
    if os.environ.get('RANK', '0') != '0':
        yield
        return
    import socket
    host, pid = socket.gethostname(), os.getpid()
    path = osp.join(work_dir, '.mmvit.lock')
    os.makedirs(work_dir, exist_ok=True)
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            with open(path, encoding='utf-8', errors='replace') as f:
                other_pid, _, other_host = f.read().strip().partition(' ')
            if other_host == host and other_pid.isdigit() and \
                    not _running(int(other_pid)):
                print(f'work dir {work_dir!r}: taking over the lock of '
                      f'process {other_pid}, which no longer runs',
                      file=sys.stderr)
                os.remove(path)
                continue
            raise RuntimeError(
                f'work dir {work_dir!r} is in use by another run (process '
                f'{other_pid} on {other_host}, lock file {path}): wait for it '
                'to finish or pass another --work-dir' + (
                    '' if other_host == host else
                    '; remove the lock file if that run is gone'))
    with os.fdopen(fd, 'w') as f:
        f.write(f'{pid} {host}\n')
    try:
        yield
    finally:
        if osp.isfile(path):
            os.remove(path)


def setup_launcher(cfg, launcher):
    """``cfg.launcher``; on a machine without CUDA, distributed runs use
    gloo on CPU.

    mmengine's initialisation calls ``torch.cuda.set_device`` and gives DDP
    ``device_ids=[LOCAL_RANK]``, both of which fail without a GPU; so there
    the gloo process group is started here (torchrun's variables; the
    timeout of ``env_cfg.dist_cfg.timeout`` in seconds) and DDP wraps the
    CPU model with ``device_ids=None``. On a GPU machine a node may not run
    more processes than it has GPUs.
    """
    import torch
    cfg.launcher = launcher
    if launcher == 'none':
        return
    os.environ.setdefault('LOCAL_RANK', '0')
    if torch.cuda.is_available():
        per_node = int(os.environ.get('LOCAL_WORLD_SIZE', 0))
        if per_node > torch.cuda.device_count():
            raise RuntimeError(
                f'--launcher {launcher}: {per_node} processes per node were '
                f'started but this machine has {torch.cuda.device_count()} '
                f'GPUs: pass at most {torch.cuda.device_count()} as the '
                'number of processes to tools/dist_train.sh / dist_test.sh')
        return
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    import torch.distributed as dist
    if launcher == 'pytorch' and not dist.is_initialized():
        import datetime
        timeout = dist_cfg.get('timeout')
        dist.init_process_group(backend='gloo', **({} if timeout is None else
                                dict(timeout=datetime.timedelta(
                                    seconds=timeout))))


def shutdown_distributed():
    """Destroy the process group, if any: left to interpreter teardown,
    gloo's threads can abort a finished process (``terminate called without
    an active exception``), which torchrun reports as a failure."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# -- errors that name the file ------------------------------------------
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


def _image_folder(dataset):
    """The image folder of ``dataset`` (COCO ``img``, mmseg ``img_path``)."""
    prefix = dataset.get('data_prefix') or {}
    return _join(dataset.get('data_root', ''),
                 prefix.get('img') or prefix.get('img_path') or '')


def _where(loader, dataset):
    """``'<loader>.dataset (listed in <annotation file>)'``."""
    ann = dataset.get('ann_file')
    return f'{loader}.dataset' + (
        f' (listed in {_join(dataset.get("data_root", ""), ann)})'
        if ann else '')


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
    """The images ``dataset`` lists: its COCO file's images, or the files
    of its image folder."""
    folder = _image_folder(dataset)
    ann = _join(dataset.get('data_root', ''), dataset.get('ann_file', ''))
    if ann.endswith('.json') and osp.isfile(ann):
        with open(ann, encoding='utf-8') as f:
            for image in json.load(f).get('images', ()):
                yield osp.join(folder, image['file_name'])
    elif folder and osp.isdir(folder):
        for top, _, names in os.walk(folder):
            for name in sorted(names):
                yield osp.join(top, name)


def _empty_image(cfg, loaders):
    """The error naming the first empty (0-byte) image of the data sets of
    ``loaders``, or None."""
    for loader, dataset in datasets(cfg, loaders):
        for image in _listed_images(dataset):
            if osp.isfile(image) and osp.getsize(image) == 0:
                return ValueError(
                    f'{_where(loader, dataset)}: image {image!r} cannot be '
                    'decoded: the file is empty (0 bytes); restore it or '
                    'remove it from the dataset')
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
    if _EMPTY_BUFFER in str(err):  # OpenCV's decoder, given 0 bytes
        return _empty_image(cfg, loaders)
    match = _MISSING.search(str(err)) or _UNREADABLE.search(str(err))
    if match is not None and match.group(1).lower().endswith(IMAGE_SUFFIXES):
        image, missing = osp.abspath(match.group(1)), match.re is _MISSING
        where = next((_where(loader, dataset) for loader, dataset in
                      datasets(cfg, loaders) if _image_folder(dataset) and
                      image.startswith(osp.abspath(_image_folder(dataset)))),
                     'dataset')
        what = 'does not exist' if missing else \
            'cannot be decoded (a damaged or truncated file, or not an image)'
        return (FileNotFoundError if missing else ValueError)(
            f'{where}: image {match.group(1)!r} {what}; restore the file or '
            'remove it from the dataset')
    # otherwise the data set's files themselves
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
    return None


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
