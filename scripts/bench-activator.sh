#!/usr/bin/env bash
# Scale to zero, wake on request (issue 12): measures, with the workload image,
#  1. cold start through the activator: time to the first byte of a POST /api/generate sent
#     through HAProxy while the service is at zero replicas (the request wakes it, waits for
#     the replica and is forwarded), RUNS times, the service going back to zero in between;
#  2. the activator's own cost: the same request, to a warm replica, sent (a) straight to
#     the replica's published port, (b) through HAProxy, (c) through the activator (to its
#     port, with the header HAProxy sets), interleaved, SAMPLES times each.
# Starts its own HAProxy and `shoal serve` (SHOAL_BIN, default target/debug/shoal) on free
# loopback ports with a temporary config, and removes everything it started on exit.
# With MODEL_LOAD_MS=N the workload takes N ms to "load its model" on its first generate and
# the service has a warm-up request, so the cold start includes the warm-up.
# Usage: [MODEL_LOAD_MS=N] scripts/bench-activator.sh [RUNS] [SAMPLES]
set -euo pipefail
runs=${1:-10}; samples=${2:-200}
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin=${SHOAL_BIN:-$root/target/debug/shoal}
[ -x "$bin" ] || { echo "no shoal binary at $bin (cargo build -p shoal, or set SHOAL_BIN)" >&2; exit 1; }
docker image inspect shoal-workload:latest >/dev/null 2>&1 ||
  { echo "image shoal-workload:latest missing: scripts/build-workload-image.sh" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) {print "nan"; exit} m=int((NR+1)/2); printf "%.4f", a[m]}'; }

dir=$(mktemp -d)
service="bench-act-$$"
fe=$(free_port); stats=$(free_port); api=$(free_port); act=$(free_port)
token="bench-$$"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for id in $(docker ps -aq --filter "label=io.shoal.service=$service"); do docker rm -f "$id" >/dev/null; done
  rm -rf "$dir"
}
trap cleanup EXIT

warm=""
if [ -n "${MODEL_LOAD_MS:-}" ]; then
  warm="    environment:
      - SHOAL_WORKLOAD_MODEL_LOAD_MS=$MODEL_LOAD_MS
    warmup:
      path: /api/generate
      body: '{\"work\": 0}'
      timeout: 60"
fi
cat >"$dir/config.yaml" <<EOF
load_balancer:
  stats_port: $stats
  runtime_api: unix:$dir/haproxy.sock
  bind_address: 127.0.0.1
  config_file: $dir/haproxy.cfg
servers:
  - host: 127.0.0.1
    name: local
    docker_host: unix:///var/run/docker.sock
services:
  $service:
    image: shoal-workload:latest
    port: $fe
    container_port: 11434
    min_replicas: 1
    max_replicas: 1
    stop_timeout: 5
    wake_on_request: true
    idle_to_zero_after: 3
    activation_timeout: 60
    health_check:
      path: /api/tags
      interval: 1
      timeout: 1
      start_period: 20
$warm
activator:
  bind: 127.0.0.1:$act
autoscaler:
  check_interval: 5
  state_file: $dir/state.db
api:
  bind: 127.0.0.1:$api
EOF
"$bin" haproxy render --config "$dir/config.yaml" --output "$dir/haproxy.cfg"
haproxy -db -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 &
pids+=($!)
SHOAL_API_TOKEN=$token "$bin" serve --config "$dir/config.yaml" >"$dir/shoal.log" 2>&1 &
pids+=($!)

stat() { curl -sf "http://127.0.0.1:$api/services/$service/stats"; }
containers() { docker ps -aq --filter "label=io.shoal.service=$service" | wc -l; }
wait_asleep() {
  for _ in $(seq 1 600); do   # bounded: at most ~60 s
    if stat 2>/dev/null | grep -q '"desired":0' && [ "$(containers)" = 0 ]; then return 0; fi
    sleep 0.1
  done
  echo "the service did not go back to zero" >&2; tail -20 "$dir/shoal.log" >&2; exit 1
}
body='{"work": 0}'
gen() { curl -s -o /dev/null -w '%{time_starttransfer}\n' --max-time 90 -X POST -d "$body" "$@"; }

echo "cold start through the activator (POST /api/generate, time to first byte):"
cold=()
for run in $(seq 1 "$runs"); do
  wait_asleep
  t=$(gen "http://127.0.0.1:$fe/api/generate")
  cold+=("$t")
  echo "  run $run: $t s"
done
printf '%s\n' "${cold[@]}" | median | awk '{print "  median: " $1 " s"}'

echo "warm replica, $samples requests per path (interleaved):"
port=""
for _ in $(seq 1 100); do   # traffic through HAProxy keeps it awake while it gets ready
  curl -s -o /dev/null --max-time 90 -X POST -d "$body" "http://127.0.0.1:$fe/api/generate"
  port=$(stat | python3 -c 'import json,sys; c=json.load(sys.stdin)["containers"]; r=[x for x in c if x["phase"]=="ready" and x["address"]]; print(r[0]["address"].split(":")[1] if r else "")')
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "no ready replica" >&2; exit 1; }
: >"$dir/direct"; : >"$dir/haproxy"; : >"$dir/activator"
for _ in $(seq 1 "$samples"); do
  gen "http://127.0.0.1:$port/api/generate" >>"$dir/direct"
  gen "http://127.0.0.1:$fe/api/generate" >>"$dir/haproxy"
  gen -H "X-Shoal-Service: $service" "http://127.0.0.1:$act/api/generate" >>"$dir/activator"
done
d=$(median <"$dir/direct"); h=$(median <"$dir/haproxy"); a=$(median <"$dir/activator")
echo "  direct to the replica:      median $d s"
echo "  through HAProxy:            median $h s"
echo "  through the activator:      median $a s"
awk -v d="$d" -v h="$h" -v a="$a" 'BEGIN {
  printf "  activator adds %.2f ms over direct; HAProxy adds %.2f ms over direct\n", (a-d)*1000, (h-d)*1000 }'
