#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG NPROC [train.py args...]
# NPROC processes on this node (one per GPU; without CUDA they train on CPU
# with the gloo backend). Multi-node: NNODES=2 NODE_RANK=0|1 MASTER_ADDR=host
# PORT=29500 on each node.
set -euo pipefail
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$DIR/dist_launch.sh"
USAGE="tools/dist_train.sh CONFIG NPROC [train.py args...]"
[[ $# -ge 2 ]] || dist_fail "expected CONFIG and NPROC (usage: $USAGE)"
[[ -f "$1" ]] || dist_fail "config file '$1' does not exist (usage: $USAGE)"
dist_launch train.py "$USAGE" "$2" "$1" --launcher pytorch "${@:3}"
