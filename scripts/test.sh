#!/usr/bin/env bash
# Runs every test: unit, CLI, and end to end on real Docker + HAProxy.
# First checks the style (rustfmt, clippy with warnings denied) and fails fast on it;
# then installs what the tests need (scripts/ensure-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# rustfmt and clippy: usually installed with the toolchain. Only when one is missing is
# rustup asked for it (which needs the network).
for tool in fmt clippy; do
  if ! cargo "$tool" --version >/dev/null 2>&1; then
    component=$([ "$tool" = fmt ] && echo rustfmt || echo clippy)
    echo "==> installing the $component component"
    rustup component add "$component" || {
      echo "error: 'cargo $tool' is missing and 'rustup component add $component' failed; install it and rerun" >&2
      exit 1
    }
  fi
done
echo "==> cargo fmt --all --check"
cargo fmt --all --check || {
  echo "error: the code is not formatted as rustfmt would; run 'cargo fmt --all'" >&2
  exit 1
}
echo "==> cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings || {
  echo "error: clippy reported warnings (denied); fix them before the tests run" >&2
  exit 1
}

scripts/ensure-deps.sh --tests
# The shoal image the operator tests start (static release build: minutes when clean,
# seconds when cached).
echo "==> building the shoal image (scripts/build-shoal-image.sh)"
scripts/build-shoal-image.sh >/dev/null 2>/tmp/shoal-build-shoal-image.log || { cat /tmp/shoal-build-shoal-image.log >&2; exit 1; }
cargo build --workspace --all-targets --quiet
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast --test-threads 4 "$@"
else
  cargo test --workspace --no-fail-fast "$@" -- --test-threads 4
fi
