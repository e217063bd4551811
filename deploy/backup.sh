#!/usr/bin/env bash
# Backs up shoal's config and its decision journal (SQLite: events, cooldowns, desired
# counts), and restores them.
#
#   backup.sh backup  CONFIG [OUT_DIR]   -> OUT_DIR/shoal-backup-<UTC time>.tar.gz (mode 600;
#                                           the newest KEEP, default 14, are kept)
#   backup.sh restore ARCHIVE DIR        -> DIR/config.yaml, DIR/state.db (DIR empty or new)
#
# The journal is copied with SQLite's online backup (`sqlite3 .backup`), so shoal may keep
# running. The restored config is the backed-up one with autoscaler.state_file set to
# state.db next to it, so `shoal serve --config DIR/config.yaml` starts with the journal
# and cooldowns as they were. The config may hold api.token: keep archives private.
set -euo pipefail

die() { echo "error: $*" >&2; exit 1; }
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
command -v sqlite3 >/dev/null 2>&1 || die "sqlite3 is needed (apt-get install sqlite3)"

# The journal file of a config: autoscaler.state_file (default shoal-state.db), relative
# paths from the config's directory.
state_file_of() {
  local config=$1 dir value
  dir=$(cd "$(dirname "$config")" && pwd)
  value=$(sed -n 's/^[[:space:]]*state_file:[[:space:]]*\([^#]*\).*$/\1/p' "$config" | head -1 \
          | sed 's/[[:space:]]*$//; s/^["'\'']//; s/["'\'']$//')
  value=${value:-shoal-state.db}
  case $value in /*) echo "$value" ;; *) echo "$dir/$value" ;; esac
}

backup() {
  local config=${1:-} out=${2:-.} keep=${KEEP:-14}
  [ -n "$config" ] || usage
  [ -f "$config" ] || die "no config file at $config"
  local state stage stamp archive
  state=$(state_file_of "$config")
  [ -f "$state" ] || die "no journal at $state (autoscaler.state_file of $config)"
  mkdir -p "$out"
  stage=$(mktemp -d)
  trap 'rm -rf "$stage"' RETURN
  cp "$config" "$stage/config.yaml"
  sqlite3 "$state" ".backup '$stage/state.db'"
  [ "$(sqlite3 "$stage/state.db" 'PRAGMA integrity_check')" = ok ] || die "the copy of $state fails its integrity check"
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  printf 'created %s\nconfig %s\nstate_file %s\nevents %s\n' "$stamp" "$config" "$state" \
    "$(sqlite3 "$stage/state.db" 'SELECT count(*) FROM events')" > "$stage/MANIFEST"
  archive="$out/shoal-backup-$stamp.tar.gz"
  (umask 077; tar -C "$stage" -czf "$archive" MANIFEST config.yaml state.db)
  # Keep the newest $keep archives.
  ls -1t "$out"/shoal-backup-*.tar.gz 2>/dev/null | tail -n +"$((keep + 1))" | xargs -r rm -f
  echo "$archive"
}

restore() {
  local archive=${1:-} dir=${2:-}
  [ -n "$archive" ] && [ -n "$dir" ] || usage
  [ -f "$archive" ] || die "no archive at $archive"
  mkdir -p "$dir"
  [ -z "$(ls -A "$dir")" ] || die "$dir is not empty"
  (umask 077; tar -C "$dir" -xzf "$archive" config.yaml state.db MANIFEST)
  [ "$(sqlite3 "$dir/state.db" 'PRAGMA integrity_check')" = ok ] || die "the journal in $archive is corrupt"
  # Point the config at the restored journal.
  sed -i '/^[[:space:]]*state_file:/d' "$dir/config.yaml"
  if grep -q '^autoscaler:' "$dir/config.yaml"; then
    sed -i 's/^autoscaler:.*$/&\n  state_file: state.db/' "$dir/config.yaml"
  else
    printf 'autoscaler:\n  state_file: state.db\n' >> "$dir/config.yaml"
  fi
  echo "restored into $dir: config.yaml (state_file: state.db), state.db ($(sqlite3 "$dir/state.db" 'SELECT count(*) FROM events') events)"
  echo "check it with: shoal config check $dir/config.yaml"
}

case ${1:-} in
  backup) shift; backup "$@" ;;
  restore) shift; restore "$@" ;;
  *) usage ;;
esac
