#!/usr/bin/env bash
# Measures the time from `POST /services/SERVICE/scale/up` to the new replica answering
# through HAProxy (a /whoami answer from a container not seen before). Needs a running
# `shoal serve` (scripts/run-local.sh) with the workload as SERVICE, below max_replicas.
# Usage: scripts/bench-scale-up.sh [RUNS] [SERVICE] [FRONTEND_URL] [API_URL]
set -euo pipefail
runs=${1:-5}; service=${2:-ollama}; fe=${3:-http://127.0.0.1:11434}; api=${4:-http://127.0.0.1:8000}
: "${SHOAL_API_TOKEN:?set SHOAL_API_TOKEN}"
# The token goes to curl in a private header file (-H @file), never on its command line.
hdr_dir=$(mktemp -d); trap 'rm -rf "$hdr_dir"' EXIT
(umask 077; printf 'Authorization: Bearer %s\n' "$SHOAL_API_TOKEN" > "$hdr_dir/auth")
for run in $(seq 1 "$runs"); do
  declare -A seen=()
  for _ in $(seq 1 40); do seen[$(curl -sf "$fe/whoami")]=1; done
  t0=$(date +%s.%N)
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H @"$hdr_dir/auth" "$api/services/$service/scale/up")
  [ "$code" = 200 ] || { echo "scale/up answered $code" >&2; exit 1; }
  new=""
  for _ in $(seq 1 3000); do   # bounded: at most ~60 s
    h=$(curl -sf --max-time 2 "$fe/whoami" || true)
    if [ -n "$h" ] && [ -z "${seen[$h]:-}" ]; then new=$h; break; fi
    sleep 0.02
  done
  t1=$(date +%s.%N)
  [ -n "$new" ] || { echo "run $run: no new replica answered within the bound" >&2; exit 1; }
  awk -v r="$run" -v a="$t0" -v b="$t1" -v n="$new" 'BEGIN { printf "run %d: %.2f s  (%s)\n", r, b - a, n }'
  curl -s -o /dev/null -X POST -H @"$hdr_dir/auth" "$api/services/$service/scale/down"
  sleep 8   # let the removal finish before the next run
  unset seen
done
