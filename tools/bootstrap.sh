#!/usr/bin/env bash
# Create (or reuse) the virtual environment .venv inside the checkout and install
# everything mmvit needs, mmcv's compiled ops included. Idempotent: a second run
# only checks that the environment is complete.
#
# Environment variables:
#   MMVIT_VENV        path of the environment (default: <repo>/.venv)
#   MMVIT_WHEEL_CACHE folder for the mmcv wheel built once per machine
#                     (default: ${XDG_CACHE_HOME:-$HOME/.cache}/mmvit/wheels)
#   MAX_JOBS          compiler jobs for the mmcv build (default: number of cores)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MMVIT_VENV:-$repo/.venv}"
wheels="${MMVIT_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmvit/wheels}"
py="$venv/bin/python"
stamp="$venv/.mmvit-installed"

log() { printf '[bootstrap] %s\n' "$*" >&2; }

# Fast path: nothing changed since the last complete install.
if [[ -f "$stamp" && "$stamp" -nt "$repo/requirements.txt" && "$stamp" -nt "$repo/pyproject.toml" ]] \
   && "$py" -c 'import mmcv.ops, mmdet, mmseg, mmpretrain, mmvit' >/dev/null 2>&1; then
  exit 0
fi

# uv is the recommended installer: it does not read pip's configuration, so it
# never picks a CPU-only torch build that torchvision cannot use.
if ! command -v uv >/dev/null 2>&1; then
  if [[ -x "$HOME/.local/bin/uv" ]]; then
    export PATH="$HOME/.local/bin:$PATH"
  else
    log "installing uv for this user (python3 -m pip install --user uv)"
    python3 -m pip install --user --quiet uv
    export PATH="$HOME/.local/bin:$PATH"
  fi
fi

if [[ ! -x "$py" ]]; then
  log "creating $venv"
  uv venv --seed --python "${PYTHON:-python3}" "$venv"
fi

log "installing torch, torchvision and build tools"
uv pip install --python "$py" 'torch==2.13.0' 'torchvision==0.28.0' \
  'setuptools>=77,<81' wheel ninja pip

mkdir -p "$wheels"
if ! ls "$wheels"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
  log "building mmcv 2.1.0 with its ops into $wheels (about 10 minutes on 2 cores, once per machine)"
  tmp="$(mktemp -d)"
  MAX_JOBS="${MAX_JOBS:-$(nproc)}" "$py" -m pip wheel --no-build-isolation --no-deps \
    'mmcv==2.1.0' -w "$tmp"
  mv "$tmp"/mmcv-2.1.0-*.whl "$wheels"/
  rm -rf "$tmp"
fi

log "installing requirements.txt"
uv pip install --python "$py" --find-links "$wheels" -r "$repo/requirements.txt"
uv pip install --python "$py" --no-deps -e "$repo"

"$py" -c 'import mmcv.ops, mmdet.models, mmseg.models, mmpretrain.models, mmvit' \
  || { log "the environment is incomplete: imports failed"; exit 1; }
touch "$stamp"
log "environment ready: $venv"
