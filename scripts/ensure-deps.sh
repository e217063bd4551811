#!/usr/bin/env bash
# Installs and starts what shoal and its tests need on a fresh Debian machine:
# a running Docker Engine, HAProxy, curl, OpenSSH (client and server), Debian's
# docker-registry, the test workload image; for the operator tests Prometheus (with
# promtool), docker-compose, headless Chromium, sqlite3 (the backup script) and systemd's
# analyzer, and schemathesis in a venv (with --tests). Idempotent. The shoal image is
# built by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)          # the fleet test's network namespaces
command -v nsenter >/dev/null 2>&1 || need_apt+=(util-linux)
command -v ssh >/dev/null 2>&1 || need_apt+=(openssh-client)      # the SSH transport
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)              # the SSH tests' servers
command -v docker-registry >/dev/null 2>&1 || need_apt+=(docker-registry)  # scripts/testbed.sh, tests/release.rs
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)        # tests/release.rs, tests/docker_tls.rs: test CAs
command -v tc >/dev/null 2>&1 || need_apt+=(iproute2)            # tests/release.rs: a shaped link
command -v jq >/dev/null 2>&1 || need_apt+=(jq)                  # tests/release.rs: the CI example's script
command -v tar >/dev/null 2>&1 || need_apt+=(tar)
if [ "${1:-}" = --tests ]; then   # only the operator tests need these (scripts/test.sh)
  command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)     # also brings promtool
  command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium fonts-dejavu-core)
  command -v sqlite3 >/dev/null 2>&1 || need_apt+=(sqlite3)
  command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
fi
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  echo "==> starting dockerd"
  if command -v systemctl >/dev/null 2>&1 && systemctl start docker 2>/dev/null; then :; else
    nohup dockerd >/var/log/shoal-dockerd.log 2>&1 &
  fi
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "error: dockerd did not start (see /var/log/shoal-dockerd.log)" >&2; exit 1; }
fi

# The API contract test (crates/shoal/tests/api_contract.rs) runs schemathesis from PyPI, in a
# venv of its own so nothing else's Python packages change.
if [ "${1:-}" = --tests ]; then
  st_venv=/opt/shoal-schemathesis st_version=4.32.5
  if ! "$st_venv/bin/schemathesis" --version 2>/dev/null | grep -q "$st_version"; then
    echo "==> installing schemathesis $st_version in $st_venv"
    python3 -m venv "$st_venv" 2>/dev/null || {   # Debian's python3 needs python3-venv for it
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv "$st_venv"
    }
    "$st_venv/bin/pip" install -q "schemathesis==$st_version"
  fi
fi

# Debian's haproxy package may start a system instance; shoal runs its own, so leave it be.
scripts/build-workload-image.sh >/dev/null 2>/tmp/shoal-build-image.log || { cat /tmp/shoal-build-image.log >&2; exit 1; }
echo "==> ready: $(docker version --format 'Docker {{.Server.Version}} (API {{.Server.APIVersion}})'), $(haproxy -v | head -1 | cut -d' ' -f1-3), image shoal-workload:latest, $(command -v prometheus >/dev/null && prometheus --version 2>&1 | head -1 | cut -d' ' -f1-3)"
