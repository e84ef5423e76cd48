"""The environment of a bug report: ``python -m mmvit.utils.collect_env``.

mmengine's report (Python, CUDA, compilers, torch and its build) plus the
versions of mmcv (and whether its compiled ops load), the OpenMMLab
libraries, and mmvit.
"""
from importlib import metadata


def collect_env():
    """An ordered dict of ``name: value`` lines."""
    from mmengine.utils.dl_utils import collect_env as collect_base

    from mmvit.version import __version__
    env = collect_base()
    for name in ('mmengine', 'mmcv', 'mmdet', 'mmsegmentation',
                 'mmpretrain', 'onnx', 'onnxruntime', 'timm'):
        try:
            env[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            env[name] = 'not installed'
    try:
        from mmcv.ops import get_compiler_version, get_compiling_cuda_version
        env['mmcv ops'] = (f'compiled ({get_compiler_version()}, CUDA '
                           f'{get_compiling_cuda_version()})')
    except (ImportError, OSError) as error:
        env['mmcv ops'] = f'unavailable: {error}'
    import os.path as osp
    package = osp.dirname(osp.dirname(osp.abspath(__file__)))
    env['mmvit'] = f'{__version__} ({package})'
    return env


def main():
    for name, value in collect_env().items():
        print(f'{name}: {value}')


if __name__ == '__main__':
    main()
