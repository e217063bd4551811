#!/usr/bin/env bash
# Runs every test: unit, CLI, and end to end on real Docker + HAProxy.
# Installs what the tests need first (scripts/ensure-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
cargo build --workspace --all-targets --quiet
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast --test-threads 4 "$@"
else
  cargo test --workspace --no-fail-fast "$@" -- --test-threads 4
fi
