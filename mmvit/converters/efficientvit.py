"""EfficientViT (Microsoft): the official layout (``patch_embed.*``,
``blocks{1,2,3}.*``) and timm's (``efficientvit_m*``: ``patch_embed.conv*``,
``stages.*``).

In ``blocks{s}.{k}`` for ``s >= 2``, ``k = 0, 1, 2`` are the downsampling
unit and ``k >= 3`` the blocks. At 224 the classifier's third stage is a 4x4
map, so its bias tables hold 4x4 offsets where ours hold the window's 7x7:
the learned offsets are copied and every other offset takes the value of the
nearest learned one (coordinates clamped), which reproduces the official
outputs at 224.
"""
import re

import torch

from .keys import rename_prefixes

_INNER_RENAMES = [
    (r'^(dw[01])\.m\.', r'\1.'),
    (r'^(ffn[01])\.m\.', r'\1.'),
    (r'^mixer\.m\.attn\.proj\.1\.', 'mixer.attn.proj.'),
    (r'^mixer\.m\.', 'mixer.'),
    (r'^se\.(conv_reduce|fc1)\.', 'se.reduce.'),
    (r'^se\.(conv_expand|fc2)\.', 'se.expand.'),
]

HEAD_KEYS = (('head.bn.', 'head.cls.bn.'), ('head.l.', 'head.cls.fc.'),
             ('head_dist.bn.', 'head.dist.bn.'),
             ('head_dist.l.', 'head.dist.fc.'),
             # timm's ``efficientvit_m*`` classifier
             ('head.linear.', 'head.cls.fc.'))
HEAD_EXAMPLE = 'head.l.weight'


def _inner(rest):
    for pattern, repl in _INNER_RENAMES:
        rest = re.sub(pattern, repl, rest)
    return rest


def rename_key(key):
    """One official backbone key -> ours (the classifier's unchanged)."""
    key = re.sub(r'\.c\.(weight|bias)$', r'.conv.\1', key)
    match = re.match(r'patch_embed\.(\d)\.(.*)', key)
    if match:
        return f'stem.{int(match.group(1))}.{match.group(2)}'
    match = re.match(r'blocks(\d)\.(\d+)\.(.*)', key)
    if not match:
        return key
    stage, index, rest = int(match.group(1)) - 1, int(match.group(2)), \
        match.group(3)
    if stage > 0 and index < 3:
        part = ('pre', 'merge', 'post')[index]
        if part != 'merge':  # Sequential(Residual(dw), Residual(FFN))
            rest = re.sub(r'^0\.m\.', 'dw.', rest)
            rest = re.sub(r'^1\.m\.', 'ffn.', rest)
        return f'stages.{stage}.downsample.{part}.{_inner(rest)}'
    block = index - 3 if stage > 0 else index
    return f'stages.{stage}.blocks.{block}.{_inner(rest)}'


_TIMM_DOWNSAMPLE = (('res1.0.m.', 'pre.dw.'), ('res1.1.m.', 'pre.ffn.'),
                    ('patchmerge.se.fc1.', 'merge.se.reduce.'),
                    ('patchmerge.se.fc2.', 'merge.se.expand.'),
                    ('patchmerge.', 'merge.'), ('res2.0.m.', 'post.dw.'),
                    ('res2.1.m.', 'post.ffn.'))


def rename_timm_key(key):
    """One key of timm's ``efficientvit_m*`` (``patch_embed.conv{1..4}``,
    ``stages.{s}.{downsample,blocks}``) -> ours (the classifier's
    unchanged)."""
    match = re.match(r'patch_embed\.conv(\d)\.(.*)', key)
    if match:
        return f'stem.{2 * (int(match.group(1)) - 1)}.{match.group(2)}'
    match = re.match(r'(stages\.\d+)\.downsample\.(.*)', key)
    if match:
        rest = rename_prefixes(match.group(2), _TIMM_DOWNSAMPLE) or \
            match.group(2)
        return f'{match.group(1)}.downsample.{rest}'
    if key.startswith('stages.'):
        return re.sub(r'^(stages\.\d+\.blocks\.\d+\.)(.*)',
                      lambda m: m.group(1) + _inner(m.group(2)), key)
    return key


def is_timm_layout(state_dict):
    """Whether ``state_dict`` has timm's EfficientViT keys."""
    return any(k.startswith('patch_embed.conv1.') or
               re.match(r'stages\.\d+\.blocks\.\d+\.dw0\.m\.', k)
               for k in state_dict)


def fit_bias_table(table, target):
    """A learned ``(heads, s*s)`` offset table embedded into the window's
    ``(heads, w*w)`` one (``target``'s shape): learned offsets kept, the
    others from the nearest learned offset. Returned unchanged when the
    shapes do not allow it (the loader then reports the mismatch)."""
    heads, learned = table.shape
    side = int(round(learned**0.5))
    window = int(round(target.shape[1]**0.5))
    if heads != target.shape[0] or side * side != learned or \
            side > window or window * window != target.shape[1]:
        return table
    rows = torch.arange(window).clamp(max=side - 1)
    grid = table.reshape(heads, side, side)[:, rows][:, :, rows]
    return grid.reshape(heads, window * window)


def convert_backbone(state_dict, model_state=None):
    """Official names -> ours; smaller bias tables -> the window's (when
    ``model_state``, the model's own state dict, is given)."""
    if is_timm_layout(state_dict):
        state_dict = {rename_timm_key(k): v for k, v in state_dict.items()
                      if not k.endswith('attention_bias_idxs')}
    elif any(k.startswith(('blocks1.', 'patch_embed.')) for k in state_dict):
        state_dict = {rename_key(k): v for k, v in state_dict.items()
                      if not k.endswith('attention_bias_idxs')}
    for key, value in list(state_dict.items()):
        if model_state is not None and key.endswith('attention_biases') \
                and key in model_state \
                and value.shape != model_state[key].shape:
            state_dict[key] = fit_bias_table(value, model_state[key])
    return state_dict
