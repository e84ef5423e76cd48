"""Loading pretrained weights into a backbone, whatever their origin.

Accepted files: an official classification checkpoint (weights under
``model``), a checkpoint written by an mmengine Runner (``state_dict`` with
``backbone.`` prefixes) or a bare state dict. Files are read with
``weights_only=True``. The family's ``convert_checkpoint`` maps official key
names to ours; tensors whose shapes do not fit raise an error naming them;
missing and unexpected keys are logged by name.
"""
import re
from collections import namedtuple
from typing import Mapping, Optional

import torch
from mmengine.logging import print_log

from mmvit.utils.safe_load import safe_torch_load

LoadReport = namedtuple('LoadReport', ['loaded', 'missing', 'unexpected'])

_STATE_DICT_KEYS = ('state_dict', 'model', 'module')


def read_checkpoint(path, map_location='cpu') -> dict:
    """Read a local file safely; URLs go through mmengine's loader."""
    path = str(path)
    if re.match(r'^[a-z][a-z0-9+]*://', path):
        from mmengine.runner import CheckpointLoader
        return CheckpointLoader.load_checkpoint(path, map_location)
    return safe_torch_load(path, map_location)


def extract_state_dict(checkpoint, source='checkpoint',
                       prefix: Optional[str] = None) -> dict:
    """Return the tensors of the backbone held by ``checkpoint``.

    Args:
        checkpoint (dict): the loaded file.
        source (str): the file's name, for error messages.
        prefix (str, optional): keep only keys under this prefix and strip
            it. By default ``backbone.`` is used when any key carries it.
    """
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f'{source}: expected a dict of tensors, got '
                        f'{type(checkpoint).__name__}')
    state_dict = checkpoint
    for key in _STATE_DICT_KEYS:
        if isinstance(checkpoint.get(key), Mapping):
            state_dict = checkpoint[key]
            break
    state_dict = {
        re.sub(r'^module\.', '', k): v
        for k, v in state_dict.items() if isinstance(v, torch.Tensor)
    }
    if prefix is None and any(k.startswith('backbone.') for k in state_dict):
        prefix = 'backbone.'
    if prefix:
        prefix = prefix if prefix.endswith('.') else prefix + '.'
        state_dict = {
            k[len(prefix):]: v
            for k, v in state_dict.items() if k.startswith(prefix)
        }
        if not state_dict:
            raise KeyError(f'{source}: no tensor under the prefix {prefix!r}')
    if not state_dict:
        raise KeyError(f'{source}: holds no tensors')
    return state_dict


def _show(keys, limit=20):
    keys = list(keys)
    text = ', '.join(keys[:limit])
    return text + (f', ... ({len(keys) - limit} more)'
                   if len(keys) > limit else '')


def load_pretrained(module, path, prefix=None) -> LoadReport:
    """Load ``path`` into ``module`` (an :class:`MMViTBackbone`)."""
    owner = type(module).__name__
    state_dict = extract_state_dict(read_checkpoint(path), str(path), prefix)
    state_dict = module.convert_checkpoint(state_dict)
    own = module.state_dict()
    mismatched = [
        f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
        for k, v in state_dict.items() if k in own and v.shape != own[k].shape
    ]
    if mismatched:
        raise ValueError(
            f'checkpoint {str(path)!r} does not fit {owner} (another variant?):'
            f' {len(mismatched)} tensors have other shapes:\n  ' +
            '\n  '.join(mismatched[:30]))
    loaded = [k for k in state_dict if k in own]
    if not loaded:
        raise ValueError(
            f'checkpoint {str(path)!r}: none of its keys belongs to {owner}; '
            f'its first keys are: {_show(state_dict, 8)}')
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    module.load_state_dict(state_dict, strict=False)
    print_log(
        f'{owner}: loaded {len(loaded)}/{len(own)} tensors from {path}',
        logger='current')
    if missing:
        print_log(f'{owner}: missing keys (left as initialised): '
                  f'{_show(missing)}', logger='current', level=30)
    if unexpected:
        print_log(f'{owner}: unexpected keys (not used): {_show(unexpected)}',
                  logger='current', level=30)
    return LoadReport(loaded, missing, unexpected)
