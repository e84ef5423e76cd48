"""Validation of backbone constructor arguments shared by every family."""
from typing import Mapping, Sequence


def parse_arch(arch, arch_settings: Mapping[str, dict], owner: str,
               per_stage=()) -> dict:
    """Return the settings of ``arch``: a name of ``arch_settings`` or a dict.

    A dict must hold exactly the keys of the table's entries, and each key
    of ``per_stage`` a list as long as ``depths``.
    """
    settings = _lookup_arch(arch, arch_settings, owner)
    for key in per_stage:
        if len(settings[key]) != len(settings['depths']):
            raise ValueError(
                f'{owner}: arch {key} has {len(settings[key])} entries, '
                f'depths has {len(settings["depths"])}')
    return settings


def _lookup_arch(arch, arch_settings, owner):
    required = set(next(iter(arch_settings.values())))
    if isinstance(arch, str):
        if arch not in arch_settings:
            raise ValueError(
                f'{owner}: unknown arch {arch!r}; allowed: '
                f'{sorted(arch_settings)} or a dict with keys '
                f'{sorted(required)}')
        return dict(arch_settings[arch])
    if isinstance(arch, Mapping):
        missing = sorted(required - set(arch))
        extra = sorted(set(arch) - required)
        if missing or extra:
            raise ValueError(
                f'{owner}: malformed arch dict; missing keys {missing}, '
                f'unexpected keys {extra}; required keys: {sorted(required)}')
        return dict(arch)
    raise TypeError(f'{owner}: arch must be a str or a dict, got '
                    f'{type(arch).__name__}')


def normalize_out_indices(out_indices, num_stages: int, owner: str) -> tuple:
    """Turn ints or sequences (negative allowed) into sorted stage indices."""
    if isinstance(out_indices, int):
        out_indices = [out_indices]
    if not isinstance(out_indices, Sequence) or not out_indices:
        raise TypeError(f'{owner}: out_indices must be an int or a non-empty '
                        f'sequence of ints, got {out_indices!r}')
    result = []
    for index in out_indices:
        if not isinstance(index, int) or not -num_stages <= index < num_stages:
            raise ValueError(
                f'{owner}: out_indices entry {index!r} is out of range for '
                f'{num_stages} stages (allowed {-num_stages}..{num_stages - 1})')
        result.append(index % num_stages)
    if len(set(result)) != len(result):
        raise ValueError(f'{owner}: out_indices {out_indices!r} repeat a stage')
    return tuple(sorted(result))


def check_frozen_stages(frozen_stages: int, num_stages: int, owner: str):
    if not isinstance(frozen_stages, int) or not (
            -1 <= frozen_stages <= num_stages):
        raise ValueError(f'{owner}: frozen_stages must be an int in '
                         f'-1..{num_stages}, got {frozen_stages!r}')
    return frozen_stages
