#!/usr/bin/env bash
# Verify systemd/registryd.service with systemd-analyze, pointing its /opt/registryd/venv
# paths at this checkout's .venv so that the commands it names exist. Skipped (with a
# line saying so) where systemd-analyze is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v systemd-analyze >/dev/null; then
  echo "systemd-analyze not installed: unit file not verified"
  exit 0
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s#/opt/registryd/venv#$PWD/.venv#g" systemd/registryd.service >"$dir/registryd.service"
out=$(systemd-analyze verify "$dir/registryd.service" 2>&1)
if [[ -n $out ]]; then
  printf '%s\n' "$out"
  exit 1
fi
echo "systemd/registryd.service: ok"
