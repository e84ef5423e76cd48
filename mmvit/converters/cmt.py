"""CMT official layout (``stem_conv1``, ``blocks_a``, ``relative_pos_a``...).

Stages are lettered ``a``..``d``; the classifier is ``_fc``, ``_bn`` and
``head``.
"""
import re

from .keys import rename_first

_BLOCK_RENAMES = [
    (r'proj\.', 'lpu.'),
    (r'attn\.sr\.0\.', 'attn.sr.conv.'),
    (r'attn\.sr\.1\.', 'attn.sr.bn.'),
    (r'mlp\.conv1\.0\.', 'ffn.expand.conv.'),
    (r'mlp\.conv1\.2\.', 'ffn.expand.bn.'),
    (r'mlp\.proj\.', 'ffn.dw.'),
    (r'mlp\.proj_bn\.', 'ffn.dw_bn.'),
    (r'mlp\.conv2\.0\.', 'ffn.project.conv.'),
    (r'mlp\.conv2\.1\.', 'ffn.project.bn.'),
]

HEAD_KEYS = (('_fc.', 'neck.proj.conv.'), ('_bn.', 'neck.proj.bn.'),
             ('head.', 'head.cls.fc.'))
HEAD_EXAMPLE = '_fc.weight'


def rename_key(key):
    """One official backbone key -> ours (the classifier's unchanged)."""
    match = re.match(r'stem_(conv|norm)(\d)\.(.*)', key)
    if match:
        layer = 'conv' if match.group(1) == 'conv' else 'bn'
        return f'stem.{int(match.group(2)) - 1}.{layer}.{match.group(3)}'
    match = re.match(r'(patch_embed|relative_pos|blocks)_([a-d])(.*)', key)
    if not match:
        return key
    kind, stage, rest = match.group(1), 'abcd'.index(match.group(2)), \
        match.group(3)
    if kind == 'relative_pos':
        return f'stages.{stage}.pos_bias.table'
    if kind == 'patch_embed':
        return f'stages.{stage}.patch_embed{rest}'
    block, rest = re.match(r'\.(\d+)\.(.*)', rest).groups()
    rest = rename_first(rest, _BLOCK_RENAMES)
    return f'stages.{stage}.blocks.{block}.{rest}'


def convert_backbone(state_dict, model_state=None):
    """Rename official ``stem_*``/``blocks_*``/... keys; keep ours."""
    if not any(k.startswith(('stem_conv', 'blocks_a.', 'relative_pos_'))
               for k in state_dict):
        return state_dict
    return {rename_key(k): v for k, v in state_dict.items()}
