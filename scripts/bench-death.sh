#!/usr/bin/env bash
# Measures container death to out of HAProxy: `docker kill` of a serving replica until its
# name is gone from HAProxy's `show servers state`. Needs a running `shoal serve` on the
# local default (scripts/run-local.sh). Each run waits (bounded) for the service to be back
# at its desired replicas in rotation, then 3 to 5 s (random, so the kill lands anywhere
# between two passes of the loop), kills the first one, and polls the runtime API every
# 10 ms for at most 15 s. Prints each run and the median. The time includes the docker CLI.
# Usage: scripts/bench-death.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
exec timeout $((runs * 60 + 30)) python3 - "$runs" <<'PY'
import json, random, socket, statistics, subprocess, sys, time

SOCK, BACKEND, SERVICE = ".shoal/haproxy.sock", "ollama_backend", "ollama"

def servers():
    s = socket.socket(socket.AF_UNIX)
    s.connect(SOCK)
    s.sendall(f"show servers state {BACKEND}\n".encode())
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    s.close()
    rows = {}
    for line in out.decode().splitlines()[2:]:
        f = line.split()
        if len(f) > 6:
            rows[f[3]] = (int(f[5]), int(f[6]))  # name -> (operational, admin state)
    return rows

def in_rotation():
    # operational 2 (UP), admin state 0 (not in maintenance or drain)
    return sorted(n for n, (op, admin) in servers().items() if op == 2 and admin == 0)

def desired():
    out = subprocess.run(["target/release/shoal", "--json", "services"], check=True,
                         capture_output=True, text=True).stdout
    return next(s["desired"] for s in json.loads(out)["services"] if s["name"] == SERVICE)

took = []
for run in range(1, int(sys.argv[1]) + 1):
    deadline = time.time() + 45
    while time.time() < deadline:
        up = in_rotation()
        if up and len(up) == desired():
            break
        time.sleep(0.5)
    else:
        print(f"run {run}: not back at the desired replicas in rotation within 45 s", file=sys.stderr)
        continue
    # At rest, at a random point between two passes of the loop (every 2 s here).
    time.sleep(3 + random.uniform(0, 2))
    victim = up[0]
    t0 = time.monotonic()
    subprocess.run(["docker", "kill", victim], check=True, capture_output=True)
    gone = None
    while time.monotonic() - t0 < 15:
        if victim not in servers():
            gone = time.monotonic() - t0
            break
        time.sleep(0.01)
    if gone is None:
        print(f"run {run}: {victim} still in HAProxy after 15 s", file=sys.stderr)
        continue
    took.append(gone)
    print(f"run {run}: {victim} out of HAProxy {gone:.3f} s after docker kill", flush=True)
if took:
    print(f"median of {len(took)}: {statistics.median(took):.3f} s "
          f"(min {min(took):.3f}, max {max(took):.3f})")
PY
