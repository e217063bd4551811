#!/usr/bin/env bash
# The chaos test (crates/shoal/tests/chaos.rs) with more rounds than CI runs: shoal is
# SIGKILLed ROUNDS times at a random moment 0-2 s after a scale-up, scale-down or rolling
# update on two real servers (host Docker + a network-namespace dockerd), restarted, and the
# invariants are checked after each recovery. Prints every round and the result line.
# Usage: scripts/chaos.sh [ROUNDS (default 60)] [SEED]
# Needs root, Docker, HAProxy and the workload image (scripts/build-workload-image.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export SHOAL_CHAOS_ROUNDS=${1:-60}
[ -z "${2:-}" ] || export SHOAL_CHAOS_SEED=$2
cargo nextest run -p shoal --test chaos --no-capture 2>&1 |
  grep -E '^(CHAOS|round|VIOLATION)|PASS|FAIL|panicked'
