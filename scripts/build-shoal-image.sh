#!/usr/bin/env bash
# Build a static shoal binary and package it FROM scratch (deploy/Dockerfile.scratch).
#
# Usage: scripts/build-shoal-image.sh [IMAGE_TAG]   (default: shoal:latest)
#
# Idempotent: cargo and docker no-op when nothing changed. A clean build takes a few
# minutes (release, thin LTO); see BENCHMARKS.md.
set -euo pipefail

IMAGE="${1:-shoal:latest}"
TARGET="x86_64-unknown-linux-gnu"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

echo "==> building static shoal ($TARGET, release)" >&2
RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --quiet -p shoal --bin shoal --target "$TARGET"

BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$TARGET/release/shoal"
ldd_out="$(ldd "$BIN" 2>&1 || true)"
case "$ldd_out" in
    *"not a dynamic executable"* | *"statically linked"*) ;;
    *) echo "error: $BIN is not statically linked:" >&2; echo "$ldd_out" >&2; exit 1 ;;
esac

CONTEXT="$(mktemp -d)"
trap 'rm -rf "$CONTEXT"' EXIT
cp "$ROOT/deploy/Dockerfile.scratch" "$CONTEXT/Dockerfile"
cp "$BIN" "$CONTEXT/shoal"
echo "==> docker build -t $IMAGE" >&2
docker build -q -t "$IMAGE" "$CONTEXT" >/dev/null
docker image inspect --format '{{.Id}}' "$IMAGE"
