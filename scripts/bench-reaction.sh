#!/usr/bin/env bash
# Measures the autoscaler's reaction time: from the start of a CPU load step through HAProxy
# to the first new replica in rotation (its `replica_ready` journal event). Needs a running
# `shoal serve` on the local default (scripts/run-local.sh) at 1 replica.
# Usage: scripts/bench-reaction.sh [RUNS] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}; clients=${2:-8}
shoal=target/release/shoal
fe=http://127.0.0.1:11434
for run in $(seq 1 "$runs"); do
  for _ in $(seq 1 90); do   # wait (bounded): back at 1 replica, cooldown over
    [ "$($shoal --json services | jq -c '.services[0] | [.desired, .cooldown_remaining_seconds]')" = '[1,0]' ] && break; sleep 2
  done
  t0=$(date +%s.%N)
  pids=()
  for _ in $(seq 1 "$clients"); do
    ( end=$((SECONDS + 60)); while [ $SECONDS -lt $end ]; do
        curl -s -o /dev/null -X POST -d '{"work":200}' "$fe/api/generate" || true; done ) &
    pids+=($!)
  done
  ready=""
  for _ in $(seq 1 120); do
    ready=$($shoal --json events ollama --limit 20 | jq -r --arg t0 "$t0" \
      '[.events[] | select(.action == "replica_ready") | select((.at | sub("\\.[0-9]+Z$"; "Z") | fromdateiso8601) >= ($t0 | tonumber | floor))] | last | .at // empty')
    [ -n "$ready" ] && break; sleep 0.5
  done
  kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true
  [ -n "$ready" ] || { echo "run $run: no new replica within 60 s" >&2; continue; }
  python3 -c "import sys,datetime as d; t=d.datetime.fromisoformat(sys.argv[1][:26]+'+00:00').timestamp(); print(f'run $run: {t - float(sys.argv[2]):.1f} s to the first new replica in rotation')" "$ready" "$t0"
done
