"""Loading pretrained weights into a backbone, whatever their origin.

Accepted files: an official classification checkpoint (weights under
``model``), a checkpoint written by an mmengine Runner (``state_dict`` with
``backbone.`` prefixes), a bare state dict (``.pth`` or ``.safetensors``),
local or by URL (downloaded once into the torch hub cache, see
:mod:`mmvit.utils.download`). Files are read with ``weights_only=True``.
The family's ``convert_checkpoint`` maps official (and timm's) key names to
ours; tensors whose shapes do not fit raise an error naming them; missing
and unexpected keys are logged by name.
"""
import os
import re
from collections import namedtuple
from typing import Mapping, Optional

import torch
from mmengine.logging import print_log

from mmvit.utils.download import download_checkpoint, is_url
from mmvit.utils.safe_load import safe_torch_load

LoadReport = namedtuple('LoadReport', ['loaded', 'missing', 'unexpected'])

_STATE_DICT_KEYS = ('state_dict', 'model', 'module')


def _where_to_get(path):
    """The index's note on where to get a missing official file."""
    from mmvit.families import families
    name = os.path.basename(path)
    for fam in families().values():
        if name.startswith(fam.key + '_') and fam.weights_note:
            return f' ({fam.name}: {fam.weights_note})'
    return ''


def read_checkpoint(path, map_location='cpu', sha256=None) -> dict:
    """Read a checkpoint safely: a local file, or a URL downloaded once
    (``sha256`` checked when given or known to the index)."""
    path = str(path)
    if is_url(path):
        path = download_checkpoint(path, sha256=sha256)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint file {path!r} does not exist'
                                + _where_to_get(path))
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return load_file(path, device=str(map_location))
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


def show_keys(keys, limit=20):
    """The first ``limit`` keys, comma-separated, with how many are left."""
    keys = list(keys)
    text = ', '.join(keys[:limit])
    return text + (f', ... ({len(keys) - limit} more)'
                   if len(keys) > limit else '')


def load_pretrained(module, path, prefix=None, sha256=None) -> LoadReport:
    """Load ``path`` (a file or URL) into ``module`` (an
    :class:`MMViTBackbone`)."""
    owner = type(module).__name__
    state_dict = extract_state_dict(read_checkpoint(path, sha256=sha256),
                                    str(path), prefix)
    state_dict = module.convert_checkpoint(state_dict)
    own = module.state_dict()
    mismatched = [
        f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
        for k, v in state_dict.items() if k in own and v.shape != own[k].shape
    ]
    loaded = [k for k, v in state_dict.items()
              if k in own and v.shape == own[k].shape]
    missing = sorted(set(own) - set(state_dict))
    if len(own) - len(missing) < len(own) / 2:  # few names in common
        raise ValueError(
            f'checkpoint {str(path)!r} does not fit {owner}: it provides '
            f'{len(loaded)} of its {len(own)} tensors (weights of another '
            f'family or model?); {len(missing)} are missing (e.g. '
            f'{show_keys(missing, 3)}), {len(mismatched)} have other shapes; '
            f'the file\'s first keys are: {show_keys(state_dict, 5)}')
    if mismatched:
        raise ValueError(
            f'checkpoint {str(path)!r} does not fit {owner} (another variant?):'
            f' {len(mismatched)} tensors have other shapes:\n  ' +
            '\n  '.join(mismatched[:30]))
    unexpected = sorted(set(state_dict) - set(own))
    module.load_state_dict(state_dict, strict=False)
    print_log(
        f'{owner}: loaded {len(loaded)}/{len(own)} tensors from {path}',
        logger='current')
    if missing:
        print_log(f'{owner}: missing keys (left as initialised): '
                  f'{show_keys(missing)}', logger='current', level=30)
    if unexpected:
        print_log(f'{owner}: unexpected keys (not used): '
                  f'{show_keys(unexpected)}',
                  logger='current', level=30)
    return LoadReport(loaded, missing, unexpected)
