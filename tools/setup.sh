#!/usr/bin/env bash
# tools/setup.sh — installs what clue needs on Debian/Ubuntu (when missing) and
# builds it. Sourced by tools/quickstart.sh and tools/test.sh; can run alone:
#   tools/setup.sh [build-folder] [extra cmake options...]
set -euo pipefail

CLUE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PACKAGES=(build-essential cmake pkg-config git openmpi-bin libopenmpi-dev
          libhdf5-openmpi-dev libopenblas-dev libyaml-dev libcmocka-dev
          python3-anndata python3-h5py python3-yaml python3-sklearn python3-scipy clang libclang-rt-dev time bc
          chromium python3-pil umap-learn)

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

# clue_timed DIR NP LABEL CMD...: runs CMD on NP ranks under mpirun (extra
# mpirun flags in the array CLUE_MPIRUN_FLAGS), its output in DIR/LABEL.txt;
# prints the wall time and the lowest and highest peak RSS of its ranks.
clue_timed() {
  local dir="$1" np="$2" label="$3"; shift 3
  local t0 t1 lo hi
  t0=$(date +%s.%N)
  mpirun ${CLUE_MPIRUN_FLAGS[@]+"${CLUE_MPIRUN_FLAGS[@]}"} -np "$np" sh -c \
    'exec /usr/bin/time -f %M -o "$0/rss.${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-0}}" "$@"' \
    "$dir" "$@" >"$dir/$label.txt" 2>&1 ||
    { tail -5 "$dir/$label.txt"; echo "$label failed (log: $dir/$label.txt)" >&2; return 1; }
  t1=$(date +%s.%N)
  lo=$(cat "$dir"/rss.* | sort -n | head -1); hi=$(cat "$dir"/rss.* | sort -n | tail -1)
  rm -f "$dir"/rss.*
  printf '%-9s %8.1f s   peak RSS per rank %d..%d MB\n' "$label" \
    "$(echo "$t1 - $t0" | bc -l)" $((lo / 1024)) $((hi / 1024))
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  clue_install_packages
  dir="${1:-$CLUE_ROOT/build}"
  shift || true
  clue_build "$dir" "$@"
  echo "clue setup: built $dir/clue"
fi
