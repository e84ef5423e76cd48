"""CAS-ViT official layout (``patch_embed.*``, ``network.{0..6}.*``).

``network.{2i}`` holds stage ``i``'s blocks, ``network.{2i-1}`` the
downsampling in front of stage ``i``; the dense-prediction model's output
norms are ``norm{0,2,4,6}``.
"""
import re

from .keys import rename_first

_BLOCK_RENAMES = [
    (r'local_perception\.network\.0\.', 'local_integration.0.conv.'),
    (r'local_perception\.network\.1\.', 'local_integration.0.bn.'),
    (r'local_perception\.network\.2\.', 'local_integration.1.conv.'),
    (r'local_perception\.network\.4\.', 'local_integration.2.'),
    (r'attn\.oper_([qk])\.0\.block\.0\.', r'token_mixer.\1_gate.0.dw.conv.'),
    (r'attn\.oper_([qk])\.0\.block\.1\.', r'token_mixer.\1_gate.0.dw.bn.'),
    (r'attn\.oper_([qk])\.0\.block\.3\.', r'token_mixer.\1_gate.0.score.'),
    (r'attn\.oper_([qk])\.1\.block\.1\.', r'token_mixer.\1_gate.1.fc.'),
    (r'attn\.', 'token_mixer.'),
]
_STEM_RENAMES = {'0': 'stem.0.conv.', '1': 'stem.0.bn.',
                 '3': 'stem.1.conv.', '4': 'stem.1.bn.'}

#: official classifier keys -> the keys of ``configs/imagenet_cas_vit_*.py``
HEAD_KEYS = (('norm.', 'backbone.norm3.'), ('head.', 'head.cls.fc.'),
             ('dist_head.', 'head.dist.fc.'))
#: a key every official classifier has
HEAD_EXAMPLE = 'head.weight'


def rename_key(key):
    """One official backbone key -> ours (others unchanged)."""
    match = re.match(r'patch_embed\.(\d)\.(.*)', key)
    if match:
        return _STEM_RENAMES[match.group(1)] + match.group(2)
    match = re.match(r'network\.(\d+)\.(proj|norm)\.(.*)', key)
    if match:
        layer = 'conv' if match.group(2) == 'proj' else 'bn'
        return (f'stages.{(int(match.group(1)) + 1) // 2}.downsample.'
                f'{layer}.{match.group(3)}')
    match = re.match(r'network\.(\d+)\.(\d+)\.(.*)', key)
    if match:
        rest = rename_first(match.group(3), _BLOCK_RENAMES)
        return (f'stages.{int(match.group(1)) // 2}.blocks.'
                f'{match.group(2)}.{rest}')
    match = re.match(r'norm([0246])\.(.*)', key)
    if match:
        return f'norm{int(match.group(1)) // 2}.{match.group(2)}'
    return key


def convert_backbone(state_dict, model_state=None):
    """Rename official ``patch_embed``/``network`` keys; keep ours."""
    if not any(k.startswith(('patch_embed.', 'network.')) for k in state_dict):
        return state_dict
    return {rename_key(k): v for k, v in state_dict.items()}
