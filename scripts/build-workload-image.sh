#!/usr/bin/env bash
# Build the static shoal-workload binary and package it as a FROM-scratch image.
#
# Usage: scripts/build-workload-image.sh [IMAGE_TAG]   (default: shoal-workload:latest)
#
# Idempotent: cargo and docker both no-op (cached) when nothing changed.
set -euo pipefail

IMAGE="${1:-shoal-workload:latest}"
TARGET="x86_64-unknown-linux-gnu"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

echo "==> building static shoal-workload ($TARGET)" >&2
RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release -p shoal-workload --target "$TARGET"

BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$TARGET/release/shoal-workload"
if [[ ! -x "$BIN" ]]; then
    echo "error: expected binary not found at $BIN" >&2
    exit 1
fi

# A dynamically linked binary would fail at runtime in a scratch image.
if command -v ldd >/dev/null 2>&1; then
    ldd_out="$(ldd "$BIN" 2>&1 || true)"
    case "$ldd_out" in
        *"not a dynamic executable"* | *"statically linked"*) ;;
        *)
            echo "error: $BIN is not statically linked:" >&2
            echo "$ldd_out" >&2
            exit 1
            ;;
    esac
else
    echo "warning: ldd not found; skipping static-linkage check" >&2
fi

CONTEXT="$(mktemp -d)"
trap 'rm -rf "$CONTEXT"' EXIT
cp "$ROOT/images/workload/Dockerfile" "$CONTEXT/Dockerfile"
cp "$BIN" "$CONTEXT/shoal-workload"

echo "==> docker build -t $IMAGE" >&2
docker build -q -t "$IMAGE" "$CONTEXT" >/dev/null

docker image inspect --format '{{.Id}}' "$IMAGE"
