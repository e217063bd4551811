#!/usr/bin/env bash
# Measures an update of a 6-replica service under steady traffic through HAProxy, on this
# machine's Docker Engine, with its own HAProxy and `shoal serve` (release build), and a
# bad release's rollback:
#   0. baseline: the client below for 15 s while nothing changes.
#   1. good: `POST deploy {"image": v2}`; a client sends GET /api/tags through HAProxy
#      every 20 ms (one at a time) from the update's start to its end: failed requests,
#      p50/p99/max latency, the update's duration (POST to phase "done").
#   2. bad: `POST deploy {"image": v3}` where v3 answers its health check with 503: the
#      time from the bad replica's first failed check (this script probes the new container
#      itself, every 50 ms, as shoal's probe would) to the service fully back on v2 (phase
#      "rolled_back" and every running replica on v2's image ID). The same client runs.
# v2 and v3 are the workload image plus a label (v3 also with SHOAL_WORKLOAD_UNHEALTHY_AFTER_SECS=0),
# built here and removed at the end, as is everything else this script starts.
# Usage: scripts/bench-update.sh [RUNS]   (needs root for nothing; Docker and HAProxy)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
scripts/ensure-deps.sh >/dev/null
cargo build --release -p shoal --quiet
shoal=$PWD/target/release/shoal
dir=$(mktemp -d /tmp/shoal-bench-update.XXXXXX)
svc=bench-$$
v2=shoal-bench-update:v2-$$
v3=shoal-bench-update:v3-$$
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
fe=$(port); stats=$(port); api=$(port)
export SHOAL_API_TOKEN=bench-$$-token-0123456789
# The header goes through a file (curl -H @FILE), never into argv where `ps` shows it.
(umask 077; printf 'Authorization: Bearer %s\n' "$SHOAL_API_TOKEN" > "$dir/auth")
cleanup() {
  set +e
  [ -n "${load_pid:-}" ] && kill "$load_pid" 2>/dev/null
  [ -n "${shoal_pid:-}" ] && kill "$shoal_pid" 2>/dev/null && wait "$shoal_pid" 2>/dev/null
  [ -s "$dir/haproxy.pid" ] && kill "$(cat "$dir/haproxy.pid")" 2>/dev/null
  ids=$(docker ps -aq --filter "label=io.shoal.service=$svc")
  [ -n "$ids" ] && docker rm -f $ids >/dev/null
  docker rmi "$v2" "$v3" >/dev/null 2>&1
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

printf 'FROM shoal-workload:latest\nLABEL io.shoal.bench=v2\n' | docker build -q -t "$v2" - >/dev/null
printf 'FROM shoal-workload:latest\nLABEL io.shoal.bench=v3\nENV SHOAL_WORKLOAD_UNHEALTHY_AFTER_SECS=0\n' \
  | docker build -q -t "$v3" - >/dev/null
v1_id=$(docker image inspect --format '{{.Id}}' shoal-workload:latest)
v2_id=$(docker image inspect --format '{{.Id}}' "$v2")

cat >"$dir/config.yaml" <<YML
load_balancer:
  stats_port: $stats
  runtime_api: unix:$dir/haproxy.sock
  bind_address: 127.0.0.1
  config_file: $dir/haproxy.cfg
  drain_timeout: 10
servers:
  - host: 127.0.0.1
    name: local
    docker_host: unix:///var/run/docker.sock
    max_containers: 40
services:
  $svc:
    image: shoal-workload:latest
    port: $fe
    container_port: 11434
    min_replicas: 6
    max_replicas: 6
    cooldown_period: 600
    stop_timeout: 5
    health_check:
      path: /api/tags
      interval: 1
      timeout: 1
      start_period: 10
      unhealthy_threshold: 2
autoscaler:
  check_interval: 30
  state_file: $dir/state.db
api:
  bind: 127.0.0.1:$api
YML
"$shoal" haproxy render --config "$dir/config.yaml" --output "$dir/haproxy.cfg"
haproxy -D -p "$dir/haproxy.pid" -f "$dir/haproxy.cfg"
"$shoal" serve --config "$dir/config.yaml" >"$dir/shoal.log" 2>&1 &
shoal_pid=$!
base=http://127.0.0.1:$api
front=http://127.0.0.1:$fe/api/tags

ready() { curl -sf "$base/services" | jq -r --arg s "$svc" '.services[] | select(.name == $s) | .replicas.ready'; }
images() { # the full image IDs the running replicas were created from
  local ids; ids=$(docker ps -q --filter "label=io.shoal.service=$svc")
  [ -n "$ids" ] && docker inspect --format '{{.Image}}' $ids | sort -u | tr '\n' ' '
}
wait_until() { # DESCRIPTION SECONDS COMMAND...
  local what=$1 limit=$2; shift 2
  for _ in $(seq 1 $((limit * 10))); do "$@" && return 0; sleep 0.1; done
  echo "error: $what not within ${limit}s (log: $dir/shoal.log)" >&2; exit 1
}
six_on() { [ "$(ready 2>/dev/null)" = 6 ] && [ "$(images)" = "$1 " ] && [ "$(docker ps -q --filter "label=io.shoal.service=$svc" | wc -l)" = 6 ]; }
ended() { [ "$(curl -sf "$base/services/$svc/update" | jq -r .running)" = false ]; }

# The client: one GET at a time, every 20 ms; one line per request: "code seconds".
start_load() {
  : >"$dir/load.txt"
  ( while :; do
      curl -s -o /dev/null --max-time 3 -w '%{http_code} %{time_total}\n' "$front" >>"$dir/load.txt" || echo "000 3" >>"$dir/load.txt"
      sleep 0.02
    done ) &
  load_pid=$!
}
stop_load() { kill "$load_pid"; wait "$load_pid" 2>/dev/null || true; load_pid=; }
report_load() {
  awk '{ n++; if ($1 != 200) f++; print $2 }' "$dir/load.txt" | sort -n >"$dir/lat.txt"
  local n f p50 p99 max
  n=$(wc -l <"$dir/load.txt"); f=$(awk '$1 != 200' "$dir/load.txt" | wc -l)
  p50=$(awk -v n="$n" 'NR == int(n * 0.50 + 0.5) { print $1 * 1000 }' "$dir/lat.txt")
  p99=$(awk -v n="$n" 'NR == int(n * 0.99 + 0.5) { print $1 * 1000 }' "$dir/lat.txt")
  max=$(tail -1 "$dir/lat.txt" | awk '{ print $1 * 1000 }')
  printf '%d requests, %d failed, p50 %.1f ms, p99 %.1f ms, max %.1f ms' "$n" "$f" "$p50" "$p99" "$max"
}
deploy() { # IMAGE
  local code
  code=$(curl -s -o "$dir/deploy.json" -w '%{http_code}' -X POST -H @"$dir/auth" \
    -H 'Content-Type: application/json' -d "{\"image\": \"$1\"}" "$base/services/$svc/deploy")
  [ "$code" = 202 ] || { echo "deploy answered $code: $(cat "$dir/deploy.json")" >&2; exit 1; }
}

wait_until "6 replicas of v1 in rotation" 120 six_on "$v1_id"
echo "6 replicas ready; $runs run(s); $("$shoal" --version); load average $(cut -d' ' -f1-3 /proc/loadavg)"
# Baseline: the same client for 15 s with nothing changing.
start_load; sleep 15; stop_load
echo "baseline (no update, 15 s): $(report_load)"
current=$v1_id
for run in $(seq 1 "$runs"); do
  # 1. A good update: to v2 (the first run) or back to the workload image (alternating).
  if [ "$current" = "$v1_id" ]; then to=$v2; to_id=$v2_id; else to=shoal-workload:latest; to_id=$v1_id; fi
  start_load
  t0=$(date +%s.%N)
  deploy "$to"
  wait_until "the update to end" 300 ended
  t1=$(date +%s.%N)
  stop_load
  phase=$(curl -sf "$base/services/$svc/update" | jq -r .phase)
  [ "$phase" = done ] || { echo "update ended $phase" >&2; exit 1; }
  wait_until "6 on the new image" 60 six_on "$to_id"
  awk -v r="$run" -v a="$t0" -v b="$t1" 'BEGIN { printf "run %d good update (6 replicas): %.1f s; ", r, b - a }'
  report_load; echo
  current=$to_id

  # 2. A bad update (v3): from the first failed check to every replica back on $current.
  start_load
  deploy "$v3"
  first_fail=
  for _ in $(seq 1 1200); do   # bounded: 60 s
    for c in $(docker ps -q --filter "label=io.shoal.service=$svc" --filter "ancestor=$v3"); do
      p=$(docker port "$c" 11434/tcp 2>/dev/null | head -1 | sed 's/.*://')
      [ -n "$p" ] || continue
      code=$(curl -s -o /dev/null --max-time 1 -w '%{http_code}' "http://127.0.0.1:$p/api/tags" || true)
      if [ "$code" = 503 ]; then first_fail=$(date +%s.%N); break 2; fi
    done
    sleep 0.05
  done
  [ -n "$first_fail" ] || { echo "no failed check of v3 seen" >&2; exit 1; }
  back() { ended && [ "$(curl -sf "$base/services/$svc/update" | jq -r .phase)" = rolled_back ] && six_on "$current"; }
  wait_until "the rollback" 120 back
  t_back=$(date +%s.%N)
  stop_load
  awk -v r="$run" -v a="$first_fail" -v b="$t_back" \
    'BEGIN { printf "run %d bad update: first failed check -> all 6 back on the old image: %.1f s; ", r, b - a }'
  report_load; echo
done
