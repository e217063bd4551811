#!/usr/bin/env bash
# Scale benchmark: shoal against the engine SIMULATOR (crates/enginesim, `shoal-enginesim`:
# one unix socket per simulated server, "containers" that are records with a tiny HTTP
# responder on the server's loopback address), real HAProxy, real `shoal serve`.
#
# For each fleet size N (default: 4 25 100) with 50 containers per server (SERVICES services,
# N*50/SERVICES replicas each, spread by shoal's placement): start the simulator, HAProxy and
# shoal from nothing; wait until every replica is in rotation (time to converge); then, at
# rest, measure over WINDOW seconds the reconcile pass (mean and share <= 50 ms from
# shoal_reconcile_pass_duration_seconds), shoal's CPU (utime+stime from /proc) and RSS (VmRSS
# and VmHWM); then API p50/p99 with wrk (CONNS connections, LOAD seconds a route) on
# /status, /services/svc0/stats and /metrics while the loops keep reconciling, and the pass
# during that load.
#
# Usage: scripts/bench-scale.sh [N ...]      env: SERVICES=10 WINDOW=30 LOAD=10 CONNS=8
#        INTERVAL=10 (health_check.interval, s) LATENCY_MS=0 (added to every engine call)
#        KEEP_LOG=PATH (shoal's log copied to PATH.N) NO_BUILD=1 (use target/release as it is)
# Needs: haproxy, wrk, jq, curl (apt-get install haproxy wrk jq curl).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(4 25 100)
services=${SERVICES:-10}; window=${WINDOW:-30}; load=${LOAD:-10}; conns=${CONNS:-8}
interval=${INTERVAL:-10}; latency=${LATENCY_MS:-0}
for tool in haproxy wrk jq curl; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install $tool)" >&2; exit 1; }
done
[ -n "${NO_BUILD:-}" ] || cargo build --release -q -p shoal -p shoal-enginesim
shoal=$PWD/target/release/shoal; sim=$PWD/target/release/shoal-enginesim
# The token only in the environment (never on a command line).
SHOAL_API_TOKEN=${SHOAL_API_TOKEN:-$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')}
export SHOAL_API_TOKEN
tck=$(getconf CLK_TCK)
# Whatever ends the script (a signal, a closed pipe), its simulator, HAProxy and shoal end too.
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT INT TERM PIPE

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# One HAProxy runtime API command over its unix socket.
hap() { python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.argv[2].encode()+b"\n"); b=b""
while (c := s.recv(65536)): b += c
sys.stdout.write(b.decode())' "$1" "$2"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
# Sum over services of the pass histogram: "count sum le_0.025 le_0.05 le_0.1"
pass_stats() {
  curl -sf "$api/metrics" | awk '
    /^shoal_reconcile_pass_duration_seconds_count/ {c += $NF}
    /^shoal_reconcile_pass_duration_seconds_sum/ {s += $NF}
    /^shoal_reconcile_pass_duration_seconds_bucket/ && /le="0.025"/ {a += $NF}
    /^shoal_reconcile_pass_duration_seconds_bucket/ && /le="0.05"/ {b += $NF}
    /^shoal_reconcile_pass_duration_seconds_bucket/ && /le="0.1"/ {e += $NF}
    END {printf "%d %.6f %d %d %d\n", c, s, a, b, e}'
}
# From two pass_stats lines: "passes, mean ms, <=25 ms %, <=50 ms %, <=100 ms %"
pass_delta() {
  awk -v x="$1" -v y="$2" 'BEGIN { split(x, a, " "); split(y, b, " "); n = b[1] - a[1];
    if (n <= 0) { print "no passes"; exit }
    printf "%d passes, mean %.1f ms, <=25 ms %.1f%%, <=50 ms %.1f%%, <=100 ms %.1f%%",
      n, (b[2] - a[2]) / n * 1000, (b[3] - a[3]) / n * 100, (b[4] - a[4]) / n * 100,
      (b[5] - a[5]) / n * 100 }'
}

run_size() {
  local n=$1 per=$(( $1 * 50 / services ))
  local d; d=$(mktemp -d /tmp/shoal-scale.XXXXXX)
  local simpid="" hapid="" shoalpid=""
  # shellcheck disable=SC2064
  trap "kill \$shoalpid \$hapid \$simpid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf '$d'" RETURN
  "$sim" --dir "$d/sim" --servers "$n" --latency-ms "$latency" 2>"$d/sim.log" &
  simpid=$!
  for _ in $(seq 100); do [ -e "$d/sim/ready" ] && break; sleep 0.1; done
  [ -e "$d/sim/ready" ] || { echo "the simulator did not start: $(cat "$d/sim.log")" >&2; return 1; }
  local apiport; apiport=$(free_port); api=http://127.0.0.1:$apiport
  {
    echo "load_balancer:"
    echo "  stats_port: $(free_port)"
    echo "  runtime_api: unix:$d/haproxy.sock"
    echo "  bind_address: 127.0.0.1"
    echo "  config_file: $d/haproxy.cfg"
    echo "servers:"
    for i in $(seq 0 $((n - 1))); do
      printf '  - name: s%03d\n    host: 127.1.%d.%d\n    docker_host: unix://%s/sim/s%03d.sock\n    max_containers: 60\n' \
        "$i" $((i / 200)) $((i % 200 + 1)) "$d" "$i"
    done
    echo "services:"
    for s in $(seq 0 $((services - 1))); do
      printf '  svc%d:\n    image: shoal-workload:latest\n    port: %d\n    container_port: 11434\n' "$s" "$(free_port)"
      printf '    min_replicas: %d\n    max_replicas: %d\n    cooldown_period: 86400\n' "$per" "$per"
      printf '    health_check:\n      path: /api/tags\n      interval: %d\n      timeout: 2\n      start_period: 60\n' "$interval"
    done
    echo "autoscaler:"
    echo "  check_interval: 30"
    echo "  state_file: $d/state.db"
    echo "  log_level: warn"
    echo "api:"
    echo "  bind: 127.0.0.1:$apiport"
  } >"$d/config.yaml"
  "$shoal" config check "$d/config.yaml" >/dev/null
  "$shoal" haproxy render --config "$d/config.yaml" --output "$d/haproxy.cfg"
  haproxy -f "$d/haproxy.cfg" -db >"$d/haproxy.log" 2>&1 &
  hapid=$!
  for _ in $(seq 50); do [ -S "$d/haproxy.sock" ] && break; sleep 0.1; done
  local t0; t0=$(date +%s.%N)
  "$shoal" serve --config "$d/config.yaml" 2>"$d/shoal.log" &
  shoalpid=$!
  local want=$(( per * services )) ready=0
  for _ in $(seq 1200); do   # bounded: 10 minutes
    ready=$(curl -sf "$api/status" | jq '[.services[].replicas.ready] | add' 2>/dev/null || echo 0)
    [ "$ready" = "$want" ] && break
    sleep 0.5
  done
  local t1; t1=$(date +%s.%N)
  [ "$ready" = "$want" ] || { echo "N=$n: only $ready of $want ready; log: $(tail -5 "$d/shoal.log")" >&2; return 1; }
  hap "$d/haproxy.sock" "show stat" > "$d/stat.csv"
  local inhap; inhap=$(awk -F, '$2 != "BACKEND" && $2 != "FRONTEND" && $18 ~ /^UP/' "$d/stat.csv" | wc -l)
  sleep 5   # let the last joiners' passes settle to the resting requeue
  local c0 p0 c1 p1
  c0=$(cpu_ticks "$shoalpid"); p0=$(pass_stats); sleep "$window"
  c1=$(cpu_ticks "$shoalpid"); p1=$(pass_stats)
  local rss hwm; rss=$(status_kb "$shoalpid" VmRSS); hwm=$(status_kb "$shoalpid" VmHWM)
  echo "== N=$n servers x 50 = $want containers ($services services x $per), health interval ${interval}s, engine latency ${latency} ms"
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "converged from nothing (all ready) in %.1f s\n", b - a }'
  echo "HAProxy servers UP: $inhap"
  echo "at rest, ${window}s: $(pass_delta "$p0" "$p1")"
  awk -v a="$c0" -v b="$c1" -v t="$tck" -v w="$window" 'BEGIN { printf "shoal CPU at rest: %.1f%% of one core\n", (b - a) / t / w * 100 }'
  echo "shoal RSS: ${rss} kB (peak ${hwm} kB)"
  for path in /status /services/svc0/stats /metrics; do
    c0=$(cpu_ticks "$shoalpid"); p0=$(pass_stats)
    local out; out=$(wrk -t2 -c"$conns" -d"${load}s" --latency "$api$path")
    c1=$(cpu_ticks "$shoalpid"); p1=$(pass_stats)
    local p50 p99 rps
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    echo "API GET $path, $conns conns ${load}s: p50 $p50, p99 $p99, $rps req/s; pass meanwhile: $(pass_delta "$p0" "$p1"); shoal CPU $(awk -v a="$c0" -v b="$c1" -v t="$tck" -v w="$load" 'BEGIN { printf "%.0f%%", (b - a) / t / w * 100 }'); RSS then $(status_kb "$shoalpid" VmRSS) kB"
  done
  echo "shoal RSS after the API load: $(status_kb "$shoalpid" VmRSS) kB (peak $(status_kb "$shoalpid" VmHWM) kB)"
  echo "machine load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  # With RUST_LOG=warn,shoal::reconcile::runner=debug the log has every pass's timings.
  [ -z "${KEEP_LOG:-}" ] || cp "$d/shoal.log" "$KEEP_LOG.$n"
}

for n in "${sizes[@]}"; do run_size "$n"; done
