"""mmvit's version: MAJOR.MINOR.PATCH, the minor rising with each release
that adds features, the patch with fixes only (see CHANGELOG.md)."""
__version__ = '0.2.0'


def parse_version_info(version_str):
    """``'0.2.0'`` -> ``(0, 2, 0)``; a pre-release suffix stays a string."""
    parts = []
    for x in version_str.split('.'):
        parts.append(int(x) if x.isdigit() else x)
    return tuple(parts)


version_info = parse_version_info(__version__)
