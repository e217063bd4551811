#!/usr/bin/env bash
# Figures of the four-server fleet over SSH (scripts/testbed.sh), issue 7:
#   1. SSH connection setup per server: `ssh` ControlMaster started until its forwarded
#      Docker socket accepts (shoal logs it as setup_ms), over RESTARTS starts of serve;
#   2. container death -> out of HAProxy over SSH (Docker events through the tunnel): `docker
#      kill` of a serving replica on its server until HAProxy no longer lists it, DEATHS runs;
#   3. server loss -> replicas restored: `testbed.sh cut I` of a server holding a replica
#      until HAProxy has the desired count in rotation again, none of them on I (then `heal`
#      and wait until it settles), LOSSES runs;
#   4. idle RSS of shoal with 4 SSH servers, its ssh client processes counted separately.
#
# Needs root, `scripts/testbed.sh up` (4 servers), a release build (cargo build --release
# -p shoal) and nothing else using .shoal/ (it runs scripts/run-local.sh
# examples/testbed.yaml itself, in the background, and stops serve at the end; HAProxy and
# the replicas stay, like run-local: scripts/stop-local.sh).
# Usage: scripts/bench-fleet.sh [RESTARTS] [DEATHS] [LOSSES]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f examples/testbed.yaml ] || { echo "error: run scripts/testbed.sh up first" >&2; exit 1; }
exec timeout 1800 python3 - "${1:-3}" "${2:-10}" "${3:-3}" <<'PY'
import json, os, re, signal, socket, statistics, subprocess, sys, time, urllib.request

RESTARTS, DEATHS, LOSSES = (int(a) for a in sys.argv[1:4])
SOCK, BACKEND, SERVICE, API = ".shoal/haproxy.sock", "ollama_backend", "ollama", "http://127.0.0.1:8000"
LOG = ".shoal/bench-fleet.log"
TB = "/run/shoal-testbed"

def haproxy_servers():
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
            rows[f[3]] = (f[4], int(f[5]), int(f[6]))  # name -> (addr, operational, admin)
    return rows

def in_rotation():
    return {n: a for n, (a, op, admin) in haproxy_servers().items() if op == 2 and admin == 0}

def get(path):
    with urllib.request.urlopen(API + path, timeout=5) as r:
        return json.load(r)

def placement():
    return {c["name"]: c["server"] for c in get(f"/services/{SERVICE}/stats")["containers"]}

def desired():
    return get(f"/services/{SERVICE}/stats")["desired"]

def ip_of(i):
    return f"10.77.0.{10 + i}"

def wait(what, limit, f, every=0.2):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            v = f()
        except Exception:
            v = None
        if v:
            return v
        time.sleep(every)
    sys.exit(f"error: not within {limit} s: {what}")

def settled():
    up = in_rotation()
    servers = get("/servers")["servers"]
    return (len(up) == desired() and all(s["status"] == "up" for s in servers)
            and set(placement()) == set(up)) and up

serve = None
def start_serve():
    global serve
    log = open(LOG, "a")
    serve = subprocess.Popen(["scripts/run-local.sh", "examples/testbed.yaml"], stdout=log,
                             stderr=subprocess.STDOUT, env=dict(os.environ, NO_COLOR="1"))
    wait("shoal's API", 120, lambda: get("/"))

def stop_serve():
    serve.send_signal(signal.SIGTERM)
    serve.wait(timeout=30)

def setup_times(since):
    text = open(LOG).read()[since:]
    return [int(m) for m in re.findall(r"SSH connection established.*?setup_ms=(\d+)", text)]

# 1. SSH connection setup, per server, over RESTARTS starts.
os.makedirs(".shoal", mode=0o700, exist_ok=True)
open(LOG, "w").close()
setups = []
for r in range(RESTARTS):
    since = os.path.getsize(LOG)
    start_serve()
    got = wait("4 SSH connections", 60, lambda: len(setup_times(since)) >= 4 and setup_times(since))
    setups += got
    print(f"start {r + 1}: SSH setup per server (ms): {got}", flush=True)
    if r < RESTARTS - 1:
        stop_serve()
print(f"SSH connection setup: median {statistics.median(setups)} ms "
      f"(min {min(setups)}, max {max(setups)}, n={len(setups)})")

# Spread: at least one replica on 3 servers for the loss runs.
wait("settled at the desired count", 120, settled)

# 4. Idle RSS (before the faults: 30 s at rest).
time.sleep(30)
pid = serve.pid
def rss_kb(p):
    for line in open(f"/proc/{p}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
ssh = []
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        cmd = open(f"/proc/{p}/cmdline", "rb").read().replace(b"\0", b" ").decode()
    except OSError:
        continue
    if cmd.startswith("ssh ") and " -M " in cmd and "shoal" in cmd:
        ssh.append(rss_kb(p))
print(f"idle RSS: shoal serve {rss_kb(pid) / 1024:.1f} MB; {len(ssh)} ssh ControlMasters "
      f"{sum(ssh) / 1024:.1f} MB in all ({', '.join(f'{k / 1024:.1f}' for k in ssh)} MB)", flush=True)

# 2. Container death -> out of HAProxy, over SSH.
import random
deaths = []
for r in range(DEATHS):
    up = wait("settled", 120, settled)
    time.sleep(3 + random.uniform(0, 2))
    victim = sorted(up)[0]
    server = placement()[victim]
    i = int(server.removeprefix("server"))
    t0 = time.monotonic()
    subprocess.run(["docker", "-H", f"unix://{TB}/s{i}/docker.sock", "kill", victim],
                   check=True, capture_output=True)
    gone = None
    while time.monotonic() - t0 < 15:
        if victim not in haproxy_servers():
            gone = time.monotonic() - t0
            break
        time.sleep(0.01)
    if gone is None:
        print(f"death {r + 1}: {victim} still in HAProxy after 15 s", file=sys.stderr)
        continue
    deaths.append(gone)
    print(f"death {r + 1}: {victim} on {server} out of HAProxy {gone:.3f} s after docker kill", flush=True)
if deaths:
    print(f"container death -> out of HAProxy over SSH: median {statistics.median(deaths):.3f} s "
          f"(min {min(deaths):.3f}, max {max(deaths):.3f}, n={len(deaths)})")

# 3. Server loss (network link cut) -> replicas restored.
losses = []
for r in range(LOSSES):
    wait("settled", 180, settled)
    time.sleep(3)
    where = placement()
    server = sorted(set(where.values()))[-1 - (r % 2)]
    i = int(server.removeprefix("server"))
    lost = {n for n, s in where.items() if s == server}
    t0 = time.monotonic()
    subprocess.run(["scripts/testbed.sh", "cut", str(i)], check=True, capture_output=True)
    t_out = t_gone = t_back = None
    while time.monotonic() - t0 < 120:
        rows = haproxy_servers()
        up = in_rotation()
        t = time.monotonic() - t0
        if t_out is None and not (lost & set(up)):
            t_out = t
        if t_gone is None and not (lost & set(rows)):
            t_gone = t
        if t_gone is not None and len(up) >= desired() and not (lost & set(up)) \
                and all(a != ip_of(i) for a in up.values()):
            t_back = t
            break
        time.sleep(0.05)
    subprocess.run(["scripts/testbed.sh", "heal", str(i)], check=True, capture_output=True)
    if t_back is None:
        print(f"loss {r + 1}: {server} cut, replicas not restored within 120 s", file=sys.stderr)
        continue
    losses.append(t_back)
    print(f"loss {r + 1}: {server} ({len(lost)} replica(s)) cut: out of rotation {t_out:.2f} s, "
          f"deleted from HAProxy {t_gone:.2f} s, desired count in rotation elsewhere {t_back:.2f} s",
          flush=True)
    t1 = time.monotonic()
    wait(f"{server} back and settled", 180, settled)
    print(f"loss {r + 1}: healed, settled again {time.monotonic() - t1:.1f} s later", flush=True)
if losses:
    print(f"server loss -> replicas restored: median {statistics.median(losses):.2f} s "
          f"(min {min(losses):.2f}, max {max(losses):.2f}, n={len(losses)})")
stop_serve()
PY
