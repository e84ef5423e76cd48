#!/usr/bin/env bash
# Usage: tools/dist_test.sh CONFIG CHECKPOINT NPROC [test.py args...]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT as for dist_train.sh.
set -euo pipefail
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$DIR/dist_launch.sh"
USAGE="tools/dist_test.sh CONFIG CHECKPOINT NPROC [test.py args...]"
[[ $# -ge 3 ]] || dist_fail "expected CONFIG, CHECKPOINT and NPROC (usage: $USAGE)"
[[ -f "$1" ]] || dist_fail "config file '$1' does not exist (usage: $USAGE)"
[[ -f "$2" ]] || dist_fail "checkpoint file '$2' does not exist (usage: $USAGE)"
dist_launch test.py "$USAGE" "$3" "$1" "$2" --launcher pytorch "${@:4}"
