"""Packaging hook: ship the configs and the model index inside the package.

As OpenMMLab's packages do, ``mmvit/.mim/`` holds ``configs/`` and
``model-index.yml`` so that an installed mmvit resolves
``mmvit::<family>/<config>`` in any config (mmengine wants a folder in
external config names, so ``configs/<family>/<config>.py`` stand beside the
flat files, each inheriting its flat twin) and ``mim search mmvit`` finds its
models. Editable installs link the files to the checkout, other builds copy
them. Everything else is in pyproject.toml.
"""
import os
import os.path as osp
import shutil
import sys

from setuptools import setup

ROOT = osp.dirname(osp.abspath(__file__))
MIM = osp.join(ROOT, 'mmvit', '.mim')
EDITABLE = ('develop', 'editable_wheel')
BUILDS = ('build', 'build_py', 'bdist_wheel', 'sdist', 'install')


def _remove(path):
    if osp.islink(path) or osp.isfile(path):
        os.remove(path)
    elif osp.isdir(path):
        shutil.rmtree(path)


def add_mim_extension():
    commands = set(sys.argv[1:])
    if commands & set(EDITABLE):
        mode = 'symlink'
    elif commands & set(BUILDS):
        mode = 'copy'
    else:
        return
    os.makedirs(MIM, exist_ok=True)
    configs = osp.join(MIM, 'configs')
    _remove(configs)
    os.makedirs(configs)
    source = osp.join(ROOT, 'configs')
    for name in sorted(os.listdir(source)):
        src, dst = osp.join(source, name), osp.join(configs, name)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, configs), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst)
        else:
            shutil.copy2(src, dst)
    families = sorted(f[:-4] for f in os.listdir(
        osp.join(ROOT, 'mmvit', 'metafiles')) if f.endswith('.yml'))
    for name in sorted(os.listdir(source)):
        family = next((f for f in families if f'_{f}_' in name), None)
        if family is None or not name.endswith('.py'):
            continue
        os.makedirs(osp.join(configs, family), exist_ok=True)
        with open(osp.join(configs, family, name), 'w') as f:
            f.write(f"_base_ = '../{name}'\n")
    # the index's paths are relative to the file that imports them
    with open(osp.join(ROOT, 'model-index.yml')) as f:
        index = f.read().replace('mmvit/metafiles/', '../metafiles/')
    with open(osp.join(MIM, 'model-index.yml'), 'w') as f:
        f.write(index)


add_mim_extension()
setup()
