#!/usr/bin/env bash
# A fleet of N servers on this machine for trying shoal as its plan runs it: over SSH only.
#
#   scripts/testbed.sh up [N]      N servers (default 4), a registry, keys, examples/testbed.yaml
#   scripts/testbed.sh down        removes all of it (also after a failed or partial `up`)
#   scripts/testbed.sh status      what is up
#   scripts/testbed.sh docker-stop I | docker-start I    stop / start dockerd on server I
#   scripts/testbed.sh cut I | heal I                     take server I's network link down / up
#   scripts/testbed.sh sshd-stop I | sshd-start I         stop sshd on server I (and cut its
#                                                         connections) / start it again
#
# Server I is a network namespace `shoal-sI` with address 10.77.0.(10+I) on bridge br-shoal
# (10.77.0.1/24), its own dockerd (socket /run/shoal-testbed/sI/docker.sock, pulls from the
# registry) and its own sshd on port 22 (generated host key; root logs in with a generated
# client key). A local registry (Debian's docker-registry) listens on 10.77.0.1:5000 and
# holds the workload image. known_hosts is written from the generated host keys, so shoal
# verifies every server. Needs root, Docker, OpenSSH server and client, docker-registry
# (scripts/ensure-deps.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

TB=/run/shoal-testbed            # sockets, pids, keys (tmpfs: gone after a reboot)
DATA=/var/lib/shoal-testbed      # dockerd data roots, registry storage
BR=br-shoal
NET=10.77.0
REG="$NET.1:5000"
IMAGE=${TESTBED_IMAGE:-shoal-workload:latest}
CONFIG=examples/testbed.yaml

die() { echo "error: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (network namespaces, dockerd)"

ns() { echo "shoal-s$1"; }
ip_of() { echo "$NET.$((10 + $1))"; }
sock() { echo "$TB/s$1/docker.sock"; }
dk() { docker -H "unix://$(sock "$1")" "${@:2}"; }
count() { cat "$TB/count" 2>/dev/null || echo 0; }
check_index() {
  [[ "${1:-}" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le "$(count)" ] ||
    die "server index must be 1..$(count) (is the testbed up?)"
}

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Kills a process and all its descendants (sshd and its per-connection children).
kill_tree() {
  local p=$1 c
  for c in $(cat "/proc/$p/task/$p/children" 2>/dev/null); do kill_tree "$c"; done
  kill -KILL "$p" 2>/dev/null || true
}

start_dockerd() {
  local i=$1 d="$TB/s$1"
  pid_alive "$d/docker.pid" && return 0
  nsenter --net="/var/run/netns/$(ns "$i")" dockerd \
    --config-file "$d/daemon.json" --host "unix://$(sock "$i")" \
    --data-root "$DATA/s$i" --exec-root "$d/exec" --pidfile "$d/docker.pid" \
    --bip "172.30.$i.1/24" --insecure-registry "$REG" \
    >>"$d/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 60); do dk "$i" info >/dev/null 2>&1 && return 0; sleep 0.5; done
  tail -20 "$d/dockerd.log" >&2
  die "dockerd of server $i did not start (log: $d/dockerd.log)"
}

stop_dockerd() {
  local d="$TB/s$1"
  pid_alive "$d/docker.pid" || return 0
  local p; p=$(cat "$d/docker.pid")
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.5; done
  kill -KILL "$p" 2>/dev/null || true
}

start_sshd() {
  local i=$1 d="$TB/s$1"
  pid_alive "$d/sshd.pid" && return 0
  mkdir -p /run/sshd
  nsenter --net="/var/run/netns/$(ns "$i")" /usr/sbin/sshd -f "$d/sshd_config" -E "$d/sshd.log"
  for _ in $(seq 1 40); do
    (exec 3<>"/dev/tcp/$(ip_of "$i")/22") 2>/dev/null && return 0
    sleep 0.25
  done
  die "sshd of server $i did not start (log: $d/sshd.log)"
}

stop_sshd() {
  local d="$TB/s$1"
  if pid_alive "$d/sshd.pid"; then kill_tree "$(cat "$d/sshd.pid")"; fi
  # Connections whose listener is already gone: sshd children in that namespace.
  local p
  for p in $(ip netns pids "$(ns "$1")" 2>/dev/null); do
    case "$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)" in sshd:*) kill -KILL "$p" 2>/dev/null || true ;; esac
  done
  rm -f "$d/sshd.pid"
}

down() {
  local n i p
  n=$(count)
  [ "$n" -gt 0 ] || n=$({ ls -d "$TB"/s* 2>/dev/null || true; } | wc -l)
  for i in $(seq 1 "$n"); do
    stop_sshd "$i" || true
    if [ -S "$(sock "$i")" ] && dk "$i" info >/dev/null 2>&1; then
      ids=$(dk "$i" ps -aq) || true
      [ -z "$ids" ] || dk "$i" rm -f $ids >/dev/null 2>&1 || true
    fi
    stop_dockerd "$i" || true
    # Whatever still runs in the namespace (containerd, shims, containers of a killed dockerd).
    for p in $(ip netns pids "$(ns "$i")" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
    ip netns del "$(ns "$i")" 2>/dev/null || true
    ip link del "vs$i" 2>/dev/null || true
  done
  if pid_alive "$TB/registry.pid"; then kill "$(cat "$TB/registry.pid")" 2>/dev/null || true; fi
  ip link del "$BR" 2>/dev/null || true
  # Mounts left under the state dirs by a dockerd that was killed.
  { awk '{print $2}' /proc/mounts | grep -E "^($TB|$DATA)/" || true; } | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$TB" "$DATA"
  echo "==> testbed removed"
}

up() {
  local n=${1:-4} i
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 9 ] || die "N must be 1..9"
  [ ! -e "$TB" ] || die "a testbed is already up ($TB exists); run: $0 down"
  for c in ssh ssh-keygen nsenter ip dockerd docker docker-registry curl; do
    command -v "$c" >/dev/null || die "$c is missing; run scripts/ensure-deps.sh"
  done
  [ -x /usr/sbin/sshd ] || die "sshd is missing; run scripts/ensure-deps.sh"
  docker image inspect "$IMAGE" >/dev/null 2>&1 || scripts/build-workload-image.sh >/dev/null
  # From here on, a failure removes whatever was made.
  trap 'rc=$?; if [ $rc -ne 0 ]; then echo "error: testbed up failed; removing what was made" >&2; down >/dev/null 2>&1 || true; fi' EXIT
  mkdir -p "$TB/ssh" "$DATA/registry"
  chmod 700 "$TB"
  echo "$n" >"$TB/count"

  ip link add "$BR" type bridge
  ip addr add "$NET.1/24" dev "$BR"
  ip link set "$BR" up

  cat >"$TB/registry.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $DATA/registry
http:
  addr: $REG
YML
  docker-registry serve "$TB/registry.yml" >"$TB/registry.log" 2>&1 </dev/null &
  echo $! >"$TB/registry.pid"

  ssh-keygen -q -t ed25519 -N '' -C shoal-testbed -f "$TB/ssh/id_ed25519"
  : >"$TB/ssh/known_hosts"
  local driver
  driver=$(docker info --format '{{.Driver}}')
  for i in $(seq 1 "$n"); do
    local d="$TB/s$i" addr
    addr=$(ip_of "$i")
    mkdir -p "$d" "$DATA/s$i"
    ip netns add "$(ns "$i")"
    ip link add "vs$i" type veth peer name eth0 netns "$(ns "$i")"
    ip link set "vs$i" master "$BR" up
    ip -n "$(ns "$i")" addr add "$addr/24" dev eth0
    ip -n "$(ns "$i")" link set eth0 up
    ip -n "$(ns "$i")" link set lo up
    ip -n "$(ns "$i")" route add default via "$NET.1"
    printf '{"storage-driver": "%s"}\n' "$driver" >"$d/daemon.json"
    ssh-keygen -q -t ed25519 -N '' -C "shoal-testbed-s$i" -f "$d/host_ed25519"
    cp "$TB/ssh/id_ed25519.pub" "$d/authorized_keys"
    cat >"$d/sshd_config" <<CFG
Port 22
ListenAddress $addr
HostKey $d/host_ed25519
AuthorizedKeysFile $d/authorized_keys
PidFile $d/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AllowTcpForwarding local
AllowStreamLocalForwarding local
X11Forwarding no
PermitTTY no
CFG
    echo "$addr $(cut -d' ' -f1,2 "$d/host_ed25519.pub")" >>"$TB/ssh/known_hosts"
    start_dockerd "$i"
    start_sshd "$i"
    echo "==> server$i: $addr (netns $(ns "$i")): dockerd and sshd up"
  done

  for _ in $(seq 1 40); do curl -sf "http://$REG/v2/" >/dev/null && break; sleep 0.25; done
  curl -sf "http://$REG/v2/" >/dev/null || die "the registry did not start ($TB/registry.log)"
  # The host's dockerd refuses plain HTTP registries: push through server 1's.
  docker save "$IMAGE" | dk 1 load >/dev/null
  dk 1 tag "$IMAGE" "$REG/$IMAGE"
  dk 1 push "$REG/$IMAGE" >/dev/null
  for i in $(seq 2 "$n"); do dk "$i" pull "$REG/$IMAGE" >/dev/null; done
  echo "==> registry $REG holds $IMAGE (pulled on every server)"

  write_config "$n"
  trap - EXIT
  echo "==> wrote $CONFIG ($n servers over SSH). Next:"
  echo "      target/release/shoal check --config $CONFIG"
  echo "      scripts/run-local.sh $CONFIG"
}

write_config() {
  local n=$1 i
  {
    cat <<YML
# The testbed of scripts/testbed.sh: $n servers reached over SSH only, in the seed's format.
# Written by \`scripts/testbed.sh up\`; removed servers are gone after \`down\`.
load_balancer:
  stats_port: 8404
  https_enabled: false
  runtime_api: unix:../.shoal/haproxy.sock   # (shoal) relative to this file
  config_file: ../.shoal/haproxy.cfg         # (shoal)

servers:
YML
    for i in $(seq 1 "$n"); do
      echo "  - host: $(ip_of "$i")"
      echo "    name: server$i"
      echo "    ssh_user: root"
      echo "    ssh_key: $TB/ssh/id_ed25519"
      echo "    max_containers: 12"
      [ "$i" != 1 ] || echo "    role: control"
      echo "    docker_socket: $(sock "$i")   # (shoal) the server's Docker socket"
      echo
    done
    cat <<YML
services:
  ollama:
    image: $REG/$IMAGE
    port: 11434
    min_replicas: 2
    max_replicas: 8
    scale_up_threshold: 75
    scale_down_threshold: 25
    cooldown_period: 30
    business_hours_only: false
    cpus: 0.5
    health_check:
      path: /api/tags
      interval: 2
      timeout: 2
    environment:
      - OLLAMA_HOST=0.0.0.0

autoscaler:
  check_interval: 10
  state_file: ../.shoal/testbed-state.db   # (shoal)
  log_level: INFO

ssh:                                       # (shoal)
  known_hosts: $TB/ssh/known_hosts
  connect_timeout: 5
YML
  } >"$CONFIG"
}

status() {
  local n i
  n=$(count)
  [ "$n" -gt 0 ] || { echo "no testbed"; return 0; }
  for i in $(seq 1 "$n"); do
    local d="$TB/s$i" link
    link=$(cat "/sys/class/net/vs$i/operstate" 2>/dev/null || echo missing)
    printf 'server%s  %-12s dockerd:%-5s sshd:%-5s link:%s\n' "$i" "$(ip_of "$i")" \
      "$(pid_alive "$d/docker.pid" && echo up || echo down)" \
      "$(pid_alive "$d/sshd.pid" && echo up || echo down)" "$link"
  done
}

case "${1:-}" in
  up) up "${2:-4}" ;;
  down) down ;;
  status) status ;;
  docker-stop) check_index "${2:-}"; stop_dockerd "$2"; echo "==> server$2: dockerd stopped" ;;
  docker-start) check_index "${2:-}"; start_dockerd "$2"; echo "==> server$2: dockerd started" ;;
  cut) check_index "${2:-}"; ip link set "vs$2" down; echo "==> server$2: link down" ;;
  heal) check_index "${2:-}"; ip link set "vs$2" up; echo "==> server$2: link up" ;;
  sshd-stop) check_index "${2:-}"; stop_sshd "$2"; echo "==> server$2: sshd stopped, its connections cut" ;;
  sshd-start) check_index "${2:-}"; start_sshd "$2"; echo "==> server$2: sshd started" ;;
  *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
