#!/usr/bin/env bash
# tools/setup.sh — installs what clue needs on Debian/Ubuntu (when missing) and
# builds it. Sourced by tools/quickstart.sh and tools/test.sh; can run alone:
#   tools/setup.sh [build-folder] [extra cmake options...]
set -euo pipefail

CLUE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PACKAGES=(build-essential cmake pkg-config git openmpi-bin libopenmpi-dev
          libhdf5-openmpi-dev libopenblas-dev libyaml-dev libcmocka-dev
          python3-anndata python3-h5py python3-yaml clang libclang-rt-dev time bc)

clue_install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "clue setup: installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
    { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
}

# Open MPI refuses to run as root unless told; oversubscription lets a 2-core
# machine run 3-4 ranks for tests.
clue_mpi_env() {
  if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  fi
  export OMPI_MCA_rmaps_base_oversubscribe=1
  # containers without a usable /dev/shm single-copy mechanism
  export OMPI_MCA_btl_vader_single_copy_mechanism=none
}

clue_build() {
  local dir="$1"; shift
  local log="$dir.log"
  mkdir -p "$dir"
  if ! { cmake -S "$CLUE_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" &&
         cmake --build "$dir" -j "$(nproc)"; } >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "clue setup: build failed in $dir (full log: $log)" >&2
    return 1
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  clue_install_packages
  dir="${1:-$CLUE_ROOT/build}"
  shift || true
  clue_build "$dir" "$@"
  echo "clue setup: built $dir/clue"
fi
