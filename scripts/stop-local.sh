#!/usr/bin/env bash
# Stops what scripts/run-local.sh left running: HAProxy and the replicas of its services.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -s .shoal/haproxy.pid ]; then
  kill "$(cat .shoal/haproxy.pid)" 2>/dev/null || true
  rm -f .shoal/haproxy.pid
fi
ids=$(docker ps -aq --filter label=io.shoal.managed=true --filter label=io.shoal.service=ollama)
[ -z "$ids" ] || docker rm -f $ids >/dev/null
echo "stopped HAProxy and removed the ollama replicas"
