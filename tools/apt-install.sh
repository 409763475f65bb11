#!/usr/bin/env bash
# Install the Debian packages named (e.g. tmux for the test of the dashboard over a real
# terminal) when they are missing and we are root; otherwise say what the tests will skip.
set -euo pipefail
missing=()
for pkg in "$@"; do
  command -v "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "einet: ${missing[*]} not installed: the tests that need it are skipped (install it to run them)" >&2
  exit 0
fi
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
