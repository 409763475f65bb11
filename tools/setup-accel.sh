#!/usr/bin/env bash
# The C++ accelerator for reading connections (einet/accel): install a compiler and the
# headers NEST's own include (Boost's, libtool's ltdl.h) when missing and we are root, then
# build it for the NEST of the Python given ($1, default python3). einet works without it
# (connections are then read through PyNEST), so this never fails the set-up: it says in one
# line what is missing.
set -uo pipefail
python=${1:-python3}
need=()
command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 || need+=(g++)
[ -f /usr/include/boost/sort/spreadsort/spreadsort.hpp ] || [ -f /usr/local/include/boost/sort/spreadsort/spreadsort.hpp ] || need+=(libboost-dev)
# NEST's module_manager.h includes libtool's ltdl.h, which the wheel does not ship either
[ -f /usr/include/ltdl.h ] || [ -f /usr/local/include/ltdl.h ] || need+=(libltdl-dev)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; } >/dev/null 2>&1 \
      || echo "einet: could not install ${need[*]}: connections will be read through PyNEST" >&2
  else
    echo "einet: ${need[*]} not installed: connections will be read through PyNEST (install them for faster stores)" >&2
  fi
fi
"$python" -m einet.accel
