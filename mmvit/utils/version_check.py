"""The versions of the OpenMMLab stack that mmvit works with, read from the
installed distributions without importing the libraries: mmcv and mmengine
are required, mmdet, mmsegmentation and mmpretrain checked where installed."""
from importlib import metadata

from mmengine.utils import digit_version

# distribution -> (minimum, first version not supported)
REQUIRED = {'mmengine': ('0.10.0', '1.0.0'), 'mmcv': ('2.0.0', '2.2.0')}
OPTIONAL = {
    'mmdet': ('3.0.0', '3.4.0'),
    'mmsegmentation': ('1.0.0', '1.3.0'),
    'mmpretrain': ('1.0.0', '1.3.0'),
}


def check_versions(versions=None):
    """Raise ImportError naming each library whose version is outside the
    supported range (or, for mmcv and mmengine, missing); ``versions``
    (``{distribution: version or None}``) replaces the installed ones."""
    problems = []
    for name, (low, high) in {**REQUIRED, **OPTIONAL}.items():
        if versions is not None:
            version = versions.get(name)
        else:
            try:
                version = metadata.version(name)
            except metadata.PackageNotFoundError:
                version = None
        if version is None:
            if name in REQUIRED:
                problems.append(f'{name} is not installed; mmvit needs '
                                f'{name}>={low}, <{high}')
        elif not digit_version(low) <= digit_version(version) < \
                digit_version(high):
            problems.append(f'{name}=={version} is installed, but mmvit '
                            f'needs {name}>={low}, <{high}')
    if problems:
        raise ImportError('incompatible OpenMMLab stack: ' +
                          '; '.join(problems) + '. Install the versions of '
                          'requirements.txt (see the README).')
