#!/usr/bin/env bash
# bench/alternate.sh — the 2-rank speed-up measured in alternating rounds (never run
# by ctest). On a shared host single runs swing by 10–30 %; a round runs one rank,
# then two ranks, back to back, so that the host's drift cancels in each round's
# ratio. Prints every round and the medians.
#
#   bench/alternate.sh [--build DIR] [--shape multiome|cite|large] [--rounds N]
#                      [--steps N] [--before BENCH_TRAIN] [--bound]
#
# Defaults: build/, multiome, 8 rounds, 10 timed steps (after 2 warm-up steps) per
# run, no sgemm replay. --before B adds a third run per round, two ranks with B (a
# bench_train of an older build), and prints its 2-rank median beside this one's.
# --bound replays the step's GEMMs alone after each timed step (bench_train's sgemm
# bound) and prints their speed-up too: what the two cores give for the same GEMMs
# with nothing else running, sampled side by side with the step.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
build="$root/build"
shape=multiome; rounds=8; steps=10; before=; bound=
while [ $# -gt 0 ]; do
  case "$1" in --build | --shape | --rounds | --steps | --before)
    [ $# -ge 2 ] || { echo "alternate.sh: $1 needs a value" >&2; exit 2; } ;;
  esac
  case "$1" in
    --build) build="$2"; shift 2 ;;
    --shape) shape="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --before) before="$2"; shift 2 ;;
    --bound) bound=1; shift ;;
    *) echo "alternate.sh: unknown option $1 (see the header of bench/alternate.sh)" >&2; exit 2 ;;
  esac
done
case "$shape" in multiome | cite | large) ;; *)
  echo "alternate.sh: --shape must be multiome, cite or large, not '$shape'" >&2; exit 2 ;;
esac
if ! [[ "$rounds" =~ ^[1-9][0-9]*$ && "$steps" =~ ^[1-9][0-9]*$ ]]; then
  echo "alternate.sh: --rounds and --steps take positive integers" >&2; exit 2
fi
. "$root/tools/setup.sh"
clue_mpi_env
if [ ! -x "$build/bench_train" ]; then
  echo "building bench_train in $build"
  clue_build "$build"
fi
if [ -n "$before" ] && [ ! -x "$before" ]; then
  echo "alternate.sh: --before $before is not an executable bench_train" >&2; exit 2
fi

# step_time NP BIN: the median s/step of one bench_train run (with --bound, then
# the median time of the step's GEMMs alone)
step_time() {
  local t replay=--no-replay
  [ -n "$bound" ] && replay=
  t=$(OPENBLAS_NUM_THREADS=1 mpirun -np "$1" "$2" --shape "$shape" --steps "$steps" \
        --warmup 2 $replay 2>&1 | awk '/^step: median/ {s = $3} /^sgemm: step/ {g = $5}
        END {if (s != "") print s, g}')
  if [ -z "$t" ] || { [ -n "$bound" ] && [ "$(echo "$t" | wc -w)" -ne 2 ]; }; then
    echo "alternate.sh: $2 on $1 rank(s) printed no step time" >&2; exit 1
  fi
  echo "$t"
}

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "# $shape, $rounds rounds of $steps steps, git $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u '+%Y-%m-%d %H:%M UTC')"
one=(); two=(); old=(); ratio=(); gratio=(); share=()
div() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
for r in $(seq "$rounds"); do
  t1=$(step_time 1 "$build/bench_train")
  t2=$(step_time 2 "$build/bench_train")
  read -r a ga <<< "$t1"
  read -r b gb <<< "$t2"
  one+=("$a"); two+=("$b"); ratio+=("$(div "$a" "$b")")
  line="round $r: 1 rank $a s, 2 ranks $b s, speed-up ${ratio[-1]}x"
  if [ -n "$bound" ]; then
    gratio+=("$(div "$ga" "$gb")"); share+=("$(div "${ratio[-1]}" "${gratio[-1]}")")
    line="$line; GEMMs alone $ga s / $gb s, ${gratio[-1]}x"
  fi
  if [ -n "$before" ]; then
    c=$(step_time 2 "$before")
    c=${c%% *}
    old+=("$c")
    line="$line; before: 2 ranks $c s"
  fi
  echo "$line"
done
printf 'median: 1 rank %s s, 2 ranks %s s, speed-up %sx (range %s-%sx)\n' \
  "$(printf '%s\n' "${one[@]}" | median)" "$(printf '%s\n' "${two[@]}" | median)" \
  "$(printf '%s\n' "${ratio[@]}" | median)" \
  "$(printf '%s\n' "${ratio[@]}" | sort -g | head -1)" "$(printf '%s\n' "${ratio[@]}" | sort -g | tail -1)"
if [ -n "$bound" ]; then
  printf 'median: GEMMs alone speed-up %sx (range %s-%sx); step speed-up / GEMMs-alone speed-up %s\n' \
    "$(printf '%s\n' "${gratio[@]}" | median)" "$(printf '%s\n' "${gratio[@]}" | sort -g | head -1)" \
    "$(printf '%s\n' "${gratio[@]}" | sort -g | tail -1)" "$(printf '%s\n' "${share[@]}" | median)"
fi
if [ -n "$before" ]; then
  echo "median 2 ranks before: $(printf '%s\n' "${old[@]}" | median) s"
fi
