"""Packaging: everything is in pyproject.toml. ``mmvit/.mim/`` links to
``configs/`` and ``model-index.yml`` (as OpenMMLab's packages ship them), so
that ``mmvit::<family>/<config>.py`` resolves in a checkout, an editable
install and, copied into the wheel, a regular install."""
from setuptools import setup

setup()
