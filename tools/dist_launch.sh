#!/usr/bin/env bash
# Shared by dist_train.sh and dist_test.sh (sourced, not run): checks the
# launch settings and runs SCRIPT with torchrun.
#   dist_launch SCRIPT USAGE NPROC ARGS... (ARGS include --launcher pytorch)
# Environment: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1),
# PORT (29500), PYTHON (the checkout's .venv, else python).
dist_fail() { echo "$(basename "$0"): $*" >&2; exit 2; }

is_count() { [[ "$1" =~ ^[1-9][0-9]*$ ]]; }

dist_launch() {
  local script=$1 usage=$2 nproc=$3
  shift 3
  local nnodes=${NNODES:-1} node_rank=${NODE_RANK:-0}
  local port=${PORT:-29500} master=${MASTER_ADDR:-127.0.0.1}
  is_count "$nproc" || dist_fail "the number of processes per node must be" \
    "a positive integer, got '$nproc' (usage: $usage)"
  is_count "$nnodes" || dist_fail "NNODES must be a positive integer, got '$nnodes'"
  [[ "$node_rank" =~ ^[0-9]+$ && "$node_rank" -lt "$nnodes" ]] || dist_fail \
    "NODE_RANK must be an integer in [0, NNODES-1] = [0, $((nnodes - 1))], got '$node_rank'"
  [[ "$port" =~ ^[0-9]+$ && "$port" -ge 1 && "$port" -le 65535 ]] || \
    dist_fail "PORT must be a TCP port number (1-65535), got '$port'"
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  # the interpreter: $PYTHON, else the checkout's environment (make / tools/
  # bootstrap.sh create .venv), else the active one
  local python=${PYTHON:-}
  if [[ -z "$python" ]]; then
    if [[ -x "$dir/../.venv/bin/python" ]]; then python="$dir/../.venv/bin/python"
    else python=python; fi
  fi
  PYTHONPATH="$dir/..${PYTHONPATH:+:$PYTHONPATH}" \
  exec "$python" -m torch.distributed.run \
      --nnodes="$nnodes" \
      --node_rank="$node_rank" \
      --master_addr="$master" \
      --nproc_per_node="$nproc" \
      --master_port="$port" \
      "$dir/$script" "$@"
}
