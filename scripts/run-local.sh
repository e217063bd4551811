#!/usr/bin/env bash
# Runs shoal on the local default (examples/local.yaml): this machine's Docker Engine, the
# test workload as `ollama` behind HAProxy on :11434, the API on 127.0.0.1:8000.
# Installs Docker/HAProxy and builds the workload image when missing. Ctrl-C stops shoal;
# replicas and HAProxy keep running (scripts/stop-local.sh removes them).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
cargo build --release -p shoal --quiet
mkdir -p .shoal
chmod 700 .shoal
if [ -z "${SHOAL_API_TOKEN:-}" ]; then
  [ -s .shoal/token ] || (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > .shoal/token)
  SHOAL_API_TOKEN=$(cat .shoal/token)
  export SHOAL_API_TOKEN
fi
# The header for curl -H @.shoal/auth-header: the token never goes on a command line, where
# `ps` would show it. printf is a shell builtin, so this line does not expose it either.
(umask 077; printf 'Authorization: Bearer %s\n' "$SHOAL_API_TOKEN" > .shoal/auth-header)
config=${1:-examples/local.yaml}
target/release/shoal config check "$config"
target/release/shoal haproxy render --config "$config" --output .shoal/haproxy.cfg.new
if [ -s .shoal/haproxy.pid ] && kill -0 "$(cat .shoal/haproxy.pid)" 2>/dev/null; then
  echo "==> HAProxy already running (pid $(cat .shoal/haproxy.pid))"
else
  # Prefer the cfg serve wrote last (it lists the replicas), so HAProxy comes back populated.
  if ! { [ -s .shoal/haproxy.cfg ] && haproxy -c -q -f .shoal/haproxy.cfg 2>/dev/null; }; then
    haproxy -c -q -f .shoal/haproxy.cfg.new || haproxy -c -f .shoal/haproxy.cfg.new
    cp .shoal/haproxy.cfg.new .shoal/haproxy.cfg
  fi
  haproxy -D -p .shoal/haproxy.pid -f .shoal/haproxy.cfg
  echo "==> HAProxy started (pid $(cat .shoal/haproxy.pid)): ollama on :11434, stats on :8404"
fi
cat <<MSG
==> shoal API on http://127.0.0.1:8000 — in another terminal:
      export SHOAL_API_TOKEN=\$(cat $(pwd)/.shoal/token)
      target/release/shoal status
      curl http://127.0.0.1:11434/api/tags
      curl -X POST -H @$(pwd)/.shoal/auth-header http://127.0.0.1:8000/services/ollama/scale/up
MSG
exec target/release/shoal serve --config "$config"
