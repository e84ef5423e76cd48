"""Pretrained weights for a backbone, whatever their origin: an official
classification checkpoint (weights under ``model``), a checkpoint of an
mmengine Runner (``state_dict``, ``backbone.`` prefixes), a bare state dict
(``.pth`` or ``.safetensors``), local or by URL. The file is read by
:func:`mmvit.utils.read_checkpoint` (mmengine's ``CheckpointLoader``), the
family's ``convert_checkpoint`` maps official and timm key names to ours and
mmengine's ``load_state_dict`` loads them, logging missing and unexpected
keys. Weights of another family or variant are refused by name."""
import re
from collections import namedtuple

from mmvit.utils.checkpoint import read_checkpoint

LoadReport = namedtuple('LoadReport', ['loaded', 'missing', 'unexpected'])


def extract_state_dict(checkpoint, source='checkpoint', prefix=None):
    """The tensors of ``checkpoint`` (under ``state_dict`` or ``model`` if
    there), without ``module.``, restricted to ``prefix`` and stripped of it
    (by default ``backbone.`` when any key carries it)."""
    state = checkpoint
    for key in ('state_dict', 'model', 'module'):
        if isinstance(checkpoint.get(key), dict):
            state = checkpoint[key]
            break
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items()
             if hasattr(v, 'shape')}
    if prefix is None and any(k.startswith('backbone.') for k in state):
        prefix = 'backbone.'
    if prefix:
        prefix = prefix.rstrip('.') + '.'
        state = {k[len(prefix):]: v for k, v in state.items()
                 if k.startswith(prefix)}
    if not state:
        raise KeyError(f'{source}: holds no tensors' +
                       (f' under the prefix {prefix!r}' if prefix else ''))
    return state


def show_keys(keys, limit=20):
    """The first ``limit`` keys, comma-separated, with how many are left."""
    keys = list(keys)
    return ', '.join(keys[:limit]) + (
        f', ... ({len(keys) - limit} more)' if len(keys) > limit else '')


def load_pretrained(module, path, prefix=None, sha256=None,
                    checkpoint=None) -> LoadReport:
    """Load ``path`` (a file or URL) into the backbone ``module``;
    ``checkpoint``: the file's contents when the caller has read them."""
    from mmengine.runner.checkpoint import load_state_dict
    owner = type(module).__name__
    if checkpoint is None:
        checkpoint = read_checkpoint(path, sha256=sha256)
    state = extract_state_dict(checkpoint, str(path), prefix)
    state = module.convert_checkpoint(state)
    own = module.state_dict()
    mismatched = [f'{k}: checkpoint {tuple(v.shape)} vs model '
                  f'{tuple(own[k].shape)}' for k, v in state.items()
                  if k in own and v.shape != own[k].shape]
    loaded = [k for k, v in state.items()
              if k in own and v.shape == own[k].shape]
    missing = sorted(set(own) - set(state))
    if len(own) - len(missing) < len(own) / 2:  # few names in common
        raise ValueError(
            f'checkpoint {str(path)!r} does not fit {owner}: it provides '
            f'{len(loaded)} of its {len(own)} tensors (weights of another '
            f'family or model?); {len(missing)} are missing (e.g. '
            f'{show_keys(missing, 3)}), {len(mismatched)} have other shapes; '
            f'the file\'s first keys are: {show_keys(state, 5)}')
    if mismatched:
        raise ValueError(
            f'checkpoint {str(path)!r} does not fit {owner} (another variant?):'
            f' {len(mismatched)} tensors have other shapes:\n  ' +
            '\n  '.join(mismatched[:30]))
    load_state_dict(module, state, strict=False, logger='current')
    return LoadReport(loaded, missing, sorted(set(state) - set(own)))
