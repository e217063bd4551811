#!/usr/bin/env bash
# Every scaling policy and the Kubernetes HPA reference on every trace in traces/, with the
# setup of BENCHMARKS.md "Issue 10": examples/autoscale.yaml (min 1, max 8, evaluated every
# 15 s), start delay 10 s, capacity 1 load unit per replica (100 req/s for the two req/s
# traces, business-day and spiky). Prints a Markdown table. Deterministic: the figures do
# not depend on the machine.
#
#   scripts/bench-policies.sh [START_DELAY_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
delay="${1:-10}"
cargo build -q -p shoal
bin=target/debug/shoal
echo "| trace | policy | replica-minutes | overload-minutes | overload s | unserved load × min | actions (up / down) | peak | replicas started | peak queue |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for f in traces/*.csv; do
  name=$(basename "$f" .csv)
  case "$name" in business-day|spiky) cap=100 ;; *) cap=1 ;; esac
  "$bin" simulate --config examples/autoscale.yaml --trace "$f" --compare \
      --capacity "$cap" --start-delay "$delay" --json |
    jq -r --arg t "$name" '.reports[] | "| \($t) | \(.policy.kind) | \(.replica_minutes) | \(.overload_minutes) | \(.overload_seconds) | \(.unserved_load_minutes) | \(.actions) (\(.ups) / \(.downs)) | \(.peak_replicas) | \(.replicas_started) | \(.peak_queue) |"'
done
