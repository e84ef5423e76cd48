"""The versions of the OpenMMLab stack that mmvit works with.

mmcv and mmengine are required; mmdet, mmsegmentation and mmpretrain are
checked where installed (each serves its own kind of config). Versions are
read from the installed distributions, without importing the libraries.
"""
from importlib import metadata

# distribution -> (minimum, first version not supported)
REQUIRED = {
    'mmengine': ('0.10.0', '1.0.0'),
    'mmcv': ('2.0.0', '2.2.0'),
}
OPTIONAL = {
    'mmdet': ('3.0.0', '3.4.0'),
    'mmsegmentation': ('1.0.0', '1.3.0'),
    'mmpretrain': ('1.0.0', '1.3.0'),
}


def digit_version(text):
    """A comparable tuple of the release numbers of ``text`` (``'2.1.0rc1'``
    -> ``(2, 1, 0, -1, 1)``, ``'2.1'`` -> ``(2, 1, 0, 0, 0)``:
    pre-releases sort before their release)."""
    import re
    main = re.match(r'(\d+(?:\.\d+)*)(.*)', text.strip())
    if not main:
        raise ValueError(f'not a version: {text!r}')
    numbers = [int(x) for x in main.group(1).split('.')]
    numbers += [0] * (3 - len(numbers))
    rest = main.group(2)
    pre = re.match(r'[.-]?(a|b|rc)(\d*)', rest)
    if pre:
        numbers += [-3 + ('a', 'b', 'rc').index(pre.group(1)),
                    int(pre.group(2) or 0)]
    else:  # a release sorts after its pre-releases
        numbers += [0, 0]
    return tuple(numbers)


def installed_version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def check_versions(versions=None):
    """Raise ImportError naming each library whose installed version is
    outside the supported range (or, for mmcv and mmengine, missing).

    Args:
        versions (dict, optional): ``{distribution: version or None}``
            instead of the installed ones (for tests).
    """
    get = (lambda n: versions.get(n)) if versions is not None else \
        installed_version
    problems = []
    for name, (low, high) in {**REQUIRED, **OPTIONAL}.items():
        version = get(name)
        if version is None:
            if name in REQUIRED:
                problems.append(f'{name} is not installed; mmvit needs '
                                f'{name}>={low}, <{high}')
            continue
        if not digit_version(low) <= digit_version(version) < \
                digit_version(high):
            problems.append(f'{name}=={version} is installed, but mmvit '
                            f'needs {name}>={low}, <{high}')
    if problems:
        raise ImportError('incompatible OpenMMLab stack: ' +
                          '; '.join(problems) + '. Install the versions of '
                          'requirements.txt (see the README).')
