#!/usr/bin/env bash
# Build an MPI-enabled NEST 3.10 (the PyPI wheel has none) into a cache outside the checkout,
# with mpi4py and einet itself, so `einet --ranks N` and `make test-mpi` can use it.
#   EINET_MPI_PREFIX  where the environment goes (default ~/.cache/einet/nest-mpi-3.10)
# Needs Debian's Open MPI, GSL and libltdl (installed here when missing, as root) and ~15 min
# of 2 cores the first time; later runs find the cache and return at once.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
prefix=${EINET_MPI_PREFIX:-$HOME/.cache/einet/nest-mpi-3.10}
venv=$prefix/venv
stamp=$venv/.einet-mpi-ready
python=${PYTHON:-python3}

if [ -f "$stamp" ] && "$venv/bin/python" -c "import nest" >/dev/null 2>&1; then
  "$venv/bin/python" -m pip install --quiet -e "$here[test]"   # this checkout's einet, and what it newly needs
  bash "$here/tools/setup-accel.sh" "$venv/bin/python"             # cached per NEST binary
  echo "MPI NEST ready in $venv"
  exit 0
fi

need=()
command -v mpicc >/dev/null || need+=(libopenmpi-dev openmpi-bin)
dpkg -s libgsl-dev >/dev/null 2>&1 || need+=(libgsl-dev)
dpkg -s libltdl-dev >/dev/null 2>&1 || need+=(libltdl-dev)
command -v c++ >/dev/null || need+=(g++)
command -v cmake >/dev/null || need+=(cmake)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "einet: setup-mpi needs these Debian packages: ${need[*]} (install them, or point EINET_NEST_MPI_PYTHON at a Python with an MPI NEST)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

mkdir -p "$prefix"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet scikit-build-core cython "numpy>=1.24" mpi4py
src=$prefix/src
mkdir -p "$src"
[ -f "$src/nest_simulator-3.10.0.tar.gz" ] || "$venv/bin/python" -m pip download --quiet --no-deps --no-binary :all: nest-simulator==3.10.0 -d "$src"
echo "building NEST 3.10 with MPI (about 15 minutes on 2 cores; log: $prefix/build.log)" >&2
CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
  "$venv/bin/python" -m pip install --no-build-isolation "$src/nest_simulator-3.10.0.tar.gz" \
  --config-settings=cmake.define.with-mpi=ON > "$prefix/build.log" 2>&1 \
  || { echo "einet: building MPI NEST failed; see $prefix/build.log" >&2; exit 1; }
"$venv/bin/python" -m pip install --quiet -e "$here[test]"
"$venv/bin/python" -c "import nest, sys; sys.exit(0 if nest.build_info.get('have_mpi') else 1)" \
  || { echo "einet: the NEST built in $venv has no MPI" >&2; exit 1; }
bash "$here/tools/setup-accel.sh" "$venv/bin/python"
touch "$stamp"
echo "MPI NEST ready in $venv"
