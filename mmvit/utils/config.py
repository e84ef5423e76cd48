"""Config handling shared by tools/train.py and tools/test.py."""
import os
import os.path as osp
import sys

import torch
from mmengine.config import Config


_PACKAGE = osp.dirname(osp.dirname(osp.abspath(__file__)))


def config_path(config):
    """The file of ``configs/...`` (an index ``Config``): in the installed
    package's ``.mim/configs`` or, in a checkout, beside the package."""
    relative = config[len('configs/'):] if config.startswith('configs/') \
        else config
    for base in (osp.join(_PACKAGE, '.mim', 'configs'),
                 osp.join(osp.dirname(_PACKAGE), 'configs')):
        path = osp.join(base, relative)
        if osp.isfile(path):
            return path
    raise FileNotFoundError(f'config {config!r} is not installed with mmvit '
                            '(reinstall the package: pip install .)')


def _read(path, role):
    """``Config.fromfile`` with errors that name the file at fault."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{role} file {path!r} does not exist')
    try:
        return Config.fromfile(path)
    except SyntaxError as err:
        # mmengine re-raises the parser's error with at most the file's name;
        # find the file (``path`` or one of its bases) and the line
        where, parsed = _syntax_error(path) or (path, err)
        line = f', line {parsed.lineno}' if parsed.lineno else ''
        text = f': {parsed.text.strip()!r}' if parsed.text else ''
        raise SyntaxError(f'{role} file {path!r}: Python syntax error in '
                          f'{where}{line}{text} ({parsed.msg})') from None


def _syntax_error(path, seen=()):
    """(file, SyntaxError) of the first file with a syntax error among
    ``path`` and its local ``_base_`` files, or None."""
    import ast
    try:
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read(), filename=path)
    except SyntaxError as err:
        return path, err
    except OSError:
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == '_base_'
                for t in node.targets):
            try:
                bases = ast.literal_eval(node.value)
            except ValueError:
                return None
            for base in [bases] if isinstance(bases, str) else bases:
                if '::' in base:
                    continue
                base = osp.normpath(osp.join(osp.dirname(path), base))
                if base not in seen:
                    found = _syntax_error(base, (*seen, path))
                    if found:
                        return found
    return None


def _merge(cfg, options, what):
    try:
        cfg.merge_from_dict(options)
    except TypeError as err:
        # "x=... in child config cannot inherit from base because x is a
        # dict in the child config but is of type NoneType in base config"
        raise TypeError(
            f'{what}: {err} With --cfg-options, add KEY._delete_=True next to '
            'the new KEY.subkey=value settings to replace such a value.'
        ) from None


def load_config(path, overlays=(), cfg_options=None):
    """Read ``path``, then merge each overlay file, then ``cfg_options``.

    An overlay is a small config file whose keys replace or update those of
    the main config (nested dicts are merged, lists replaced, ``_delete_``
    honoured): ``configs/_toy_/retinanet.py`` switches any RetinaNet config
    to the built-in data and a CPU schedule.
    """
    cfg = _read(path, 'config')
    for overlay in overlays or ():
        _merge(cfg, _read(overlay, 'overlay').to_dict(), f'overlay {overlay!r}')
    if cfg_options:
        _merge(cfg, cfg_options, '--cfg-options')
    return cfg


def _nodes(node, path=''):
    """(path, dict) of every dict with a ``type`` string in a config
    tree."""
    if isinstance(node, dict):
        if isinstance(node.get('type'), str):
            yield path or '<root>', node
        for key, value in node.items():
            yield from _nodes(value, f'{path}.{key}' if path else str(key))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _nodes(value, f'{path}[{i}]')


def _accepted_arguments(cls):
    """The keyword arguments ``cls`` takes, or None when it takes any."""
    import inspect
    params = inspect.signature(cls).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def check_mmvit_types(cfg, source='config'):
    """Every ``type='mmvit.X'`` of ``cfg`` names a registered mmvit class,
    and every other key of that node is an argument the class accepts.

    mmengine's own error for an unknown ``mmvit.X`` names the registry of
    the config's default scope, not the ``mmvit`` scope it searched; for an
    unknown argument it is a ``TypeError`` from deep inside the build that
    does not list the accepted ones.
    """
    import difflib

    import mmvit.engine  # noqa: F401  (registers the hooks)
    import mmvit.models  # noqa: F401
    from mmvit.registry import HOOKS, MODELS
    classes = {name: cls for registry in (MODELS, HOOKS)
               for name, cls in registry.module_dict.items()}
    tree = cfg.to_dict() if hasattr(cfg, 'to_dict') else cfg
    for path, node in _nodes(tree):
        type_name = node['type']
        if not type_name.startswith('mmvit.'):
            continue
        cls = classes.get(type_name[len('mmvit.'):])
        if cls is None:
            raise KeyError(
                f'{source}: {path}.type={type_name!r}: no such class in the '
                f'mmvit registry scope (searched mmvit::model and '
                f'mmvit::hook); registered there: {sorted(classes)}')
        accepted = _accepted_arguments(cls)
        if accepted is None:
            continue
        unknown = [k for k in node if k not in ('type', '_scope_', '_delete_')
                   and k not in accepted]
        if unknown:
            hints = [f'{k!r} -> {close[0]!r}' for k in unknown for close in
                     [difflib.get_close_matches(k, accepted, 1)] if close]
            raise TypeError(
                f'{source}: {path} ({type_name}): unknown argument'
                f'{"s" if len(unknown) > 1 else ""} {unknown}'
                + (f' (did you mean {", ".join(hints)}?)' if hints else '')
                + f'; {type_name} accepts: {", ".join(accepted)}')


def _get(tree, dotted):
    node = tree
    for key in dotted.split('.'):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _is_int(value, least):
    return isinstance(value, int) and not isinstance(value, bool) and \
        value >= least


def _is_number(value, low, high=None, high_open=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if value < low:
        return False
    return high is None or (value < high if high_open else value <= high)


#: (dotted key, test, what is valid) checked before a run starts
VALUE_RULES = [
    *[(f'{split}_dataloader.batch_size', lambda v: _is_int(v, 1),
       'an integer >= 1') for split in ('train', 'val', 'test')],
    *[(f'{split}_dataloader.num_workers', lambda v: _is_int(v, 0),
       'an integer >= 0') for split in ('train', 'val', 'test')],
    ('train_cfg.max_epochs', lambda v: _is_int(v, 1), 'an integer >= 1'),
    ('train_cfg.max_iters', lambda v: _is_int(v, 1), 'an integer >= 1'),
    ('train_cfg.val_interval', lambda v: _is_int(v, 1), 'an integer >= 1'),
    ('optim_wrapper.optimizer.lr', lambda v: _is_number(v, 0),
     'a number >= 0'),
    ('optim_wrapper.optimizer.weight_decay', lambda v: _is_number(v, 0),
     'a number >= 0'),
    ('optim_wrapper.clip_grad.max_norm', lambda v: _is_number(v, 0) and v > 0,
     'a number > 0'),
    ('model.backbone.drop_path_rate',
     lambda v: _is_number(v, 0, 1, high_open=True), 'a number in [0, 1)'),
    ('default_hooks.checkpoint.max_keep_ckpts', lambda v: _is_int(v, -1),
     'an integer >= -1 (-1: keep all)'),
    ('randomness.seed', lambda v: v is None or _is_int(v, 0),
     'None or an integer >= 0'),
]


def check_values(cfg, source='config', cfg_options=None):
    """The settings of :data:`VALUE_RULES` that ``cfg`` has are in range.

    Raises:
        ValueError: naming the key, its value, where it was set
            (``--cfg-options`` or the config) and what is valid.
    """
    tree = cfg.to_dict() if hasattr(cfg, 'to_dict') else cfg
    given = set(cfg_options or ())
    for key, valid, expected in VALUE_RULES:
        value = _get(tree, key)
        if value is None and not key.endswith('seed'):
            continue
        if key.endswith('seed') and 'randomness' not in tree:
            continue
        if not valid(value):
            where = '--cfg-options' if key in given else source
            raise ValueError(f'{where}: {key}={value!r} is out of range: it '
                             f'must be {expected}')


def check_work_dir(work_dir):
    """``work_dir`` exists or can be made, and files can be written there;
    nothing in it is changed."""
    import tempfile
    try:
        os.makedirs(work_dir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=work_dir, prefix='.write-test-'):
            pass
    except OSError as err:
        raise PermissionError(
            f'work dir {work_dir!r} is not writable ({err.strerror or err}); '
            'pass a folder you can write to with --work-dir') from None


def prepare_config(args):
    """The config that tools/train.py and tools/test.py run.

    Reads ``args.config`` with ``args.overlay`` and ``args.cfg_options``,
    sets up the launcher and the work dir (``--work-dir``, else the
    config's, else ``./work_dirs/<config name>``).
    """
    cfg = load_config(args.config, args.overlay, args.cfg_options)
    check_mmvit_types(cfg, args.config)
    check_values(cfg, args.config, args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join(
            './work_dirs', osp.splitext(osp.basename(args.config))[0])
    check_work_dir(cfg.work_dir)
    if cfg.get('load_from') and not cfg.get('resume'):
        check_checkpoint_file(cfg.load_from, 'load_from')
    use_safer_hooks(cfg)
    prepare_compile(cfg)
    add_custom_hook(cfg, 'mmvit.CheckpointFitHook')
    setup_launcher(cfg, args.launcher)
    return cfg


def prepare_compile(cfg):
    """``compile`` in a config (mmengine's ``torch.compile`` of the train
    step) made static unless it says ``dynamic``: ``True`` becomes
    ``dict(dynamic=False)``. Each input shape then compiles a graph of its
    own (up to torch's recompile limit, past which the step runs eagerly).
    With torch's default, a second input shape makes the sizes symbolic,
    and CMT's graph then fails to compile (symbolic strides of its
    channels-last token views and its resized position biases). Also adds
    :class:`~mmvit.engine.PlainParamGroupsHook` (an optimizer step over
    mmengine's ``ConfigDict`` parameter groups does not compile)."""
    compile_cfg = cfg.get('compile')
    if compile_cfg is True:
        cfg.compile = dict(dynamic=False)
    elif isinstance(compile_cfg, dict) and 'dynamic' not in compile_cfg:
        cfg.compile = dict(compile_cfg, dynamic=False)
    if compile_cfg:
        add_custom_hook(cfg, 'mmvit.PlainParamGroupsHook')
    return cfg


def add_custom_hook(cfg, hook_type):
    """Append ``dict(type=hook_type)`` to ``cfg.custom_hooks`` unless a
    hook of that type is there already."""
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(h.get('type') == hook_type for h in hooks):
        cfg.custom_hooks = hooks + [dict(type=hook_type)]


AMP_WRAPPERS = ('AmpOptimWrapper', 'mmvit.MixedPrecisionOptimWrapper')


def use_amp(cfg, requested=False):
    """Mixed precision as ``tools/train.py --amp`` asks (``requested``) or
    the config sets it (``optim_wrapper.type='AmpOptimWrapper'``): on a
    machine without an accelerator, where mmengine's wrapper refuses to
    run, :class:`~mmvit.engine.MixedPrecisionOptimWrapper` trains in
    bfloat16 instead; with one it is mmengine's wrapper, dynamic loss
    scaling included."""
    from mmvit.engine.optim_wrapper import has_accelerator
    wrapper = cfg.optim_wrapper
    kind = wrapper.get('type', 'OptimWrapper')
    if requested and kind in AMP_WRAPPERS:
        print('AMP training is already enabled in the config.')
    elif requested:
        wrapper.type = 'mmvit.MixedPrecisionOptimWrapper'
        wrapper.loss_scale = 'dynamic'
    elif kind == 'AmpOptimWrapper' and not has_accelerator():
        print('optim_wrapper: AmpOptimWrapper needs an accelerator; on this '
              'CPU-only machine mmvit.MixedPrecisionOptimWrapper trains in '
              'bfloat16 instead')
        wrapper.type = 'mmvit.MixedPrecisionOptimWrapper'
    return cfg


def resume_checkpoint(work_dir, requested=None):
    """The checkpoint ``--resume`` continues from
    (:func:`mmvit.engine.checkpoint.find_resume_checkpoint`); says so when
    the work dir has none and the run starts from scratch."""
    from mmvit.engine.checkpoint import find_resume_checkpoint

    def say(message):
        if os.environ.get('RANK', '0') == '0':
            print(message, file=sys.stderr, flush=True)

    path = find_resume_checkpoint(work_dir, requested, log=say)
    if path is None:
        say(f'--resume: {work_dir!r} holds no checkpoint yet; training '
            'starts from scratch.')
    return path


def check_checkpoint_file(path, what):
    """``path`` is a complete checkpoint file (URLs are left to the
    loader), before anything is built or written."""
    from mmvit.engine.checkpoint import checkpoint_problem
    from mmvit.utils.download import is_url
    if is_url(path):
        return
    problem = checkpoint_problem(path)
    if problem is None:
        return
    if problem == 'the file does not exist':
        raise FileNotFoundError(f'{what}: checkpoint file {path!r} does not '
                                'exist')
    raise RuntimeError(f'{what}: {problem}' if problem.startswith(
        'cannot read checkpoint') else f'{what}: cannot read checkpoint '
        f'{path!r}: {problem}')


#: mmengine hooks the tools replace by mmvit's (same arguments)
SAFER_HOOKS = {
    'checkpoint': ('CheckpointHook', 'mmvit.AtomicCheckpointHook'),
    'logger': ('LoggerHook', 'mmvit.MainProcessLoggerHook'),
}


def use_safer_hooks(cfg):
    """Save through :class:`mmvit.AtomicCheckpointHook` and log through
    :class:`mmvit.MainProcessLoggerHook` where the config names mmengine's
    plain ``CheckpointHook`` / ``LoggerHook``."""
    hooks = cfg.get('default_hooks') or {}
    for key, (plain, ours) in SAFER_HOOKS.items():
        hook = hooks.get(key)
        if isinstance(hook, dict) and hook.get('type') in (
                plain, f'mmengine.{plain}'):
            hook['type'] = ours


def shutdown_distributed():
    """Destroy the process group, if any, before the interpreter exits:
    left to interpreter teardown, gloo's threads can abort the process
    after the work is done (``terminate called without an active
    exception``), which torchrun reports as a failure."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


#: the environment each launcher's processes are started with
LAUNCHER_ENV = {
    'pytorch': ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR',
                'MASTER_PORT'),
    'slurm': ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'),
    'mpi': ('OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE'),
}
_HOW_TO_START = {
    'pytorch': 'start it with tools/dist_train.sh CONFIG NPROC (or '
               'torchrun --nproc_per_node NPROC tools/train.py CONFIG '
               '--launcher pytorch), or drop --launcher for one process',
    'slurm': 'start it with tools/slurm_train.sh (srun), or drop --launcher '
             'for one process',
    'mpi': 'start it with mpirun, or drop --launcher for one process',
}


def check_launcher_env(launcher, environ=None):
    """The variables ``launcher``'s processes need are set, and on a GPU
    machine no more processes run per node than there are GPUs."""
    environ = os.environ if environ is None else environ
    missing = [k for k in LAUNCHER_ENV.get(launcher, ()) if k not in environ]
    if launcher == 'pytorch' and missing == ['LOCAL_RANK']:
        missing = []  # tools set LOCAL_RANK from --local-rank
    if missing:
        raise RuntimeError(
            f'--launcher {launcher}: this process was not started by the '
            f'launcher: the environment lacks {", ".join(missing)}. '
            f'{_HOW_TO_START[launcher][0].upper()}'
            f'{_HOW_TO_START[launcher][1:]}.')
    per_node = environ.get('LOCAL_WORLD_SIZE')
    if launcher == 'pytorch' and per_node and torch.cuda.is_available():
        gpus = torch.cuda.device_count()
        if int(per_node) > gpus:
            raise RuntimeError(
                f'--launcher pytorch: {per_node} processes per node were '
                f'started but this machine has {gpus} GPU'
                f'{"s" if gpus != 1 else ""}: pass at most {gpus} as the '
                'number of processes to tools/dist_train.sh / dist_test.sh')


def setup_launcher(cfg, launcher):
    """Record the launcher; without CUDA, distributed runs use gloo on CPU.

    mmengine's own initialisation calls ``torch.cuda.set_device`` and gives
    DDP ``device_ids=[LOCAL_RANK]``, both of which fail without a GPU. On a
    machine without CUDA the gloo process group is therefore started here
    (torchrun's environment variables, the timeout of
    ``env_cfg.dist_cfg.timeout`` in seconds) and DDP wraps the CPU model
    with ``device_ids=None``.
    """
    cfg.launcher = launcher
    if launcher == 'none':
        return
    check_launcher_env(launcher)
    os.environ.setdefault('LOCAL_RANK', '0')
    if torch.cuda.is_available():
        return
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    if launcher == 'pytorch':
        import datetime

        import torch.distributed as dist
        if not dist.is_initialized():
            timeout = dist_cfg.get('timeout')
            dist.init_process_group(
                backend='gloo', **({} if timeout is None else dict(
                    timeout=datetime.timedelta(seconds=timeout))))


def build_model(cfg):
    """The model of ``cfg``, built by the registry of its ``default_scope``
    (mmdet, mmseg or mmpretrain); weights as constructed."""
    import importlib

    from mmengine.registry import init_default_scope
    import mmvit.models  # noqa: F401
    scope = cfg.get('default_scope') or 'mmengine'
    init_default_scope(scope)
    return importlib.import_module(f'{scope}.registry').MODELS.build(
        cfg.model)


#: what --tta wraps a model of each library in when the config names none
DEFAULT_TTA_MODELS = {
    'mmdet': dict(type='mmdet.DetTTAModel',
                  tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5),
                               max_per_img=100)),
    'mmpretrain': dict(type='mmpretrain.AverageClsScoreTTA'),
}
_DET_META_KEYS = ('img_id', 'img_path', 'ori_shape', 'img_shape',
                  'scale_factor', 'flip', 'flip_direction')


def use_tta(cfg, source='config'):
    """Test with test-time augmentation (``tools/test.py --tta``), as the
    libraries' own tools do: ``cfg.model`` goes inside ``cfg.tta_model``
    (mmdet's ``DetTTAModel``, :class:`mmvit.MaskDetTTAModel` for models
    with masks, mmseg's ``SegTTAModel``, mmpretrain's
    ``AverageClsScoreTTA``) and the test set runs ``cfg.tta_pipeline``.

    mmvit's configs name both (multi-scale and flip); where a detection or
    classification config has none, the test pipeline with a horizontal
    flip is used, as in mmdet's and mmpretrain's ``tools/test.py``.
    """
    import copy

    from mmengine.config import ConfigDict
    scope = cfg.get('default_scope', 'mmdet')
    tta_model = cfg.get('tta_model')
    if tta_model is None:
        if scope not in DEFAULT_TTA_MODELS:
            raise KeyError(f'{source}: --tta needs tta_model and '
                           'tta_pipeline in the config (mmseg\'s '
                           'default_runtime.py and datasets define them)')
        tta_model = copy.deepcopy(DEFAULT_TTA_MODELS[scope])
        if scope == 'mmdet' and cfg.model.get('roi_head', {}).get(
                'mask_head'):
            tta_model['type'] = 'mmvit.MaskDetTTAModel'
    if cfg.get('tta_pipeline') is None:
        if scope not in DEFAULT_TTA_MODELS:
            raise KeyError(f'{source}: --tta needs tta_pipeline in the '
                           'config')
        pipeline = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
        pack = pipeline[-1]
        if scope == 'mmdet':
            pack = dict(type='PackDetInputs', meta_keys=_DET_META_KEYS)
        pipeline[-1] = dict(type='TestTimeAug', transforms=[
            [dict(type='RandomFlip', prob=1.),
             dict(type='RandomFlip', prob=0.)], [pack]])
        cfg.tta_pipeline = pipeline
    cfg.model = ConfigDict(**tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
