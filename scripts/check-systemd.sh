#!/usr/bin/env bash
# Check the systemd files: `systemd-analyze verify` of systemd/registryd.service (its
# /opt/registryd/venv paths pointed at this checkout's .venv so that the commands it names
# exist), its `systemd-analyze security --offline=yes` exposure (at most $MAX_EXPOSURE),
# and that systemd/registryd.sysusers creates the user and group the unit runs as.
# Skipped (with a line saying so) where systemd-analyze is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."
# What the unit reaches with systemd 252; a higher figure means hardening was lost.
MAX_EXPOSURE=${MAX_EXPOSURE:-1.1}
unit=systemd/registryd.service
if ! command -v systemd-analyze >/dev/null; then
  echo "systemd-analyze not installed: unit file not verified"
  exit 0
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

sed "s#/opt/registryd/venv#$PWD/.venv#g" "$unit" >"$dir/registryd.service"
out=$(systemd-analyze verify "$dir/registryd.service" 2>&1)
if [[ -n $out ]]; then
  printf '%s\n' "$out"
  exit 1
fi

security=$(systemd-analyze security --offline=yes "$unit" 2>&1)
line=$(grep 'Overall exposure level' <<<"$security" || true)
score=$(sed -E 's/.*: ([0-9]+\.[0-9]+) .*/\1/' <<<"$line")
if [[ -z $line || -z $score ]]; then
  printf '%s\n' "$security"
  exit 1
fi
if awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s > m) }'; then
  grep '✗' <<<"$security" || true
  echo "$unit: exposure $score is above $MAX_EXPOSURE: hardening was lost"
  exit 1
fi

mkdir "$dir/root" "$dir/root/etc"
systemd-sysusers --root="$dir/root" "$PWD/systemd/registryd.sysusers" 2>/dev/null
user=$(sed -n -E 's/^User=(.*)/\1/p' "$unit")
group=$(sed -n -E 's/^Group=(.*)/\1/p' "$unit")
if ! grep -q "^$user:.*:/usr/sbin/nologin\$" "$dir/root/etc/passwd" ||
  ! grep -q "^$group:" "$dir/root/etc/group"; then
  echo "systemd/registryd.sysusers does not create User=$user / Group=$group"
  exit 1
fi
echo "$unit: ok (verify clean; ${line#→ }); sysusers makes $user:$group"
