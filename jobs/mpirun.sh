#!/usr/bin/env bash
# clue with plain mpirun (workstation or a cluster without SLURM integration):
#   jobs/mpirun.sh RANKS CONFIG RUN_DIR [clue train options]
# trains (continuing RUN_DIR if it holds an interrupted run), then embeds every
# cell of each modality into RUN_DIR/embed. Ranks × OpenBLAS threads
# are kept within the machine's cores; SIGTERM (Ctrl-C sends SIGINT: use
# `kill -TERM`) makes clue checkpoint and exit 75, and rerunning continues.
set -euo pipefail
np="${1:?usage: jobs/mpirun.sh RANKS CONFIG RUN_DIR [clue train options]}"
config="${2:?config}"; run="${3:?run folder}"; shift 3
here="$(cd "$(dirname "$0")" && pwd)"
CLUE="${CLUE:-$here/../build/clue}"
cores=$(nproc)
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-$(( cores / np > 0 ? cores / np : 1 ))}"
flags=()
[ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)
[ "$np" -gt "$cores" ] && flags+=(--oversubscribe)
mpirun "${flags[@]}" -np "$np" "$CLUE" train --config "$config" --set "output.dir=$run" --resume "$@"
mpirun "${flags[@]}" -np "$np" "$CLUE" embed --checkpoint "$run/checkpoint.h5" --out "$run/embed"
