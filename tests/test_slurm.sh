#!/usr/bin/env bash
# test_slurm.sh — the SLURM job templates (jobs/*.slurm) under a real Slurm: a
# throw-away one-node cluster on this machine (Debian's slurm-wlm and munge,
# installed when missing and run as root; slurm.conf, munge key, state and logs
# under CLUE_TEST_TMP; munged, slurmctld and slurmd stopped at the end, whatever
# happens). On bmmc_cite_600, 2 ranks through `srun --mpi=pmix`:
#  1. jobs/single_node.slurm trains and embeds; the losses of every epoch equal
#     those of the same run under mpirun, bit for bit;
#  2. the requeue path: SIGUSR1 to the batch script (scancel --signal=USR1
#     --batch, as --signal=B:USR1@lead does before the time limit) is passed on
#     to the ranks, clue exits 75 with a checkpoint, the job requeues itself,
#     resumes and ends with the numbers of the uninterrupted run;
#  3. the guard for a time limit shorter than the signal lead (1 minute against
#     300 s, 1 rank): the script warns, ignores SLURM's signal (sent within
#     30 s of the start) and checkpoints after 45 s with its own; the job
#     requeues and starts again;
#  4. jobs/multi_node.slurm with --nodes=1 (2 minutes, also under its guard)
#     runs end to end, with the same numbers.
# Skips (exit 77, with the reason) without the data set, without root when Slurm
# is missing, or when the daemons cannot start here. Runs about 2 minutes on 2 cores.
# CLUE_TEST_SLOW
# CLUE_TEST_TIMEOUT: 900
# CLUE_TEST_LABELS: slurm
set -u
data="${CLUE_SHARED_DATA:-}/bmmc_cite_600"
if [ ! -f "$data/rna.h5ad" ]; then echo "SKIP: shared data set bmmc_cite_600 not found"; exit 77; fi
tmp="${CLUE_TEST_TMP:-/tmp/clue-test-slurm}"
mpi="${CLUE_MPIEXEC:-mpiexec --oversubscribe}"
src="${CLUE_SOURCE_DIR:?}"
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
ncpu=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc) # nproc obeys OMP_NUM_THREADS=1
[ "$ncpu" -ge 2 ] || skip "needs 2 cores (the jobs run 2 ranks)"
# a Slurm allocation around this test (CI on a cluster) must not leak into ours
for v in $(compgen -e | grep -E '^(SLURM|SBATCH|SRUN|SQUEUE|SALLOC|SCANCEL|SINFO)_'); do unset "$v"; done

# --- the throw-away cluster: everything under $S ---
# A previous run that was killed may have left its daemons: stop those (pid files).
stop_pidfile() { # file name: TERM, then KILL after 10 s, the process of a pid file if it is `name`
  local p; p=$(cat "$1" 2>/dev/null) || return 0
  [ -n "$p" ] && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$2" ] || return 0
  kill -TERM "$p" 2>/dev/null
  for _ in $(seq 1 100); do [ -d "/proc/$p" ] || return 0; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null
}
S="$tmp/slurm"
for d in slurmd:slurmd slurmctld:slurmctld munged:munged; do stop_pidfile "$S/${d%%:*}.pid" "${d#*:}"; done
rm -rf "$tmp"; mkdir -p "$tmp"

# --- Slurm and munge (Debian packages) ---
missing=()
command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null ||
  missing+=(slurm-wlm)
command -v munged >/dev/null || missing+=(munge)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || skip "${missing[*]} not installed, and not root to install them"
  command -v apt-get >/dev/null || skip "${missing[*]} not installed, and no apt-get"
  echo "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}" ||
    { apt-get update && apt-get install -y -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}"; }; } \
    > "$tmp/apt.log" 2>&1 || { tail -5 "$tmp/apt.log"; skip "apt-get could not install ${missing[*]}"; }
fi
[ "$(id -u)" -eq 0 ] || skip "the throw-away cluster runs its daemons as root (SlurmUser=root)"

# unix sockets (munge, slurmd, slurmstepd) need short paths
if [ ${#S} -gt 60 ]; then S=$(mktemp -d /tmp/clue-slurm.XXXXXX); echo "daemon files in $S"; fi
mkdir -p "$S/munge" "$S/state" "$S/spool" "$S/log" "$S/tmp"
chmod 711 "$S/munge"
export SLURM_CONF="$S/slurm.conf"
up=0
cleanup() {
  local rc=$? j p
  trap - EXIT INT TERM HUP
  if [ "$up" -eq 1 ]; then
    # cancel our jobs, wait for them to end (their processes too), then stop the
    # daemons we started
    for j in $(timeout 20 squeue -h -o %i 2>/dev/null); do timeout 20 scancel "$j"; done
    for _ in $(seq 1 60); do [ -z "$(timeout 20 squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.5; done
    for p in $(timeout 20 scontrol listpids 2>/dev/null | awk 'NR > 1 && $1 ~ /^[0-9]+$/ {print $1}'); do
      kill -KILL "$p" 2>/dev/null
    done
  fi
  stop_pidfile "$S/slurmd.pid" slurmd
  stop_pidfile "$S/slurmctld.pid" slurmctld
  stop_pidfile "$S/munged.pid" munged
  case "$S" in /tmp/clue-slurm.*) [ "$rc" -eq 0 ] && rm -rf "$S";; esac
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
daemon_logs() { for f in "$S"/log/*.log "$S"/munge/munged.log; do
  [ -f "$f" ] && { echo "--- $f"; tail -8 "$f"; }; done; }

# munge: a fresh key, our own socket
head -c 1024 /dev/urandom > "$S/munge/munge.key"; chmod 400 "$S/munge/munge.key"
munged --force --socket="$S/munge/socket" --key-file="$S/munge/munge.key" \
  --pid-file="$S/munged.pid" --log-file="$S/munge/munged.log" --seed-file="$S/munge/seed" ||
  { daemon_logs; skip "munged does not start here"; }
munge -S "$S/munge/socket" -n 2>/dev/null | unmunge -S "$S/munge/socket" >/dev/null 2>&1 ||
  { daemon_logs; skip "munge credentials do not work here"; }

# two free TCP ports
read -r port1 port2 < <(python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
host=$(hostname -s)
mem=$(( $(awk '/^MemTotal/ {print $2}' /proc/meminfo) / 1024 ))
cat > "$SLURM_CONF" <<EOF
# throw-away one-node cluster of tests/test_slurm.sh
ClusterName=cluetest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port1
SlurmdPort=$port2
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: how long a requeued job waits before it starts again (default 120 s)
AuthInfo=socket=$S/munge/socket,cred_expire=5
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
# srun --mpi=pmix makes spmix_appdir_<uid>_<job>.<step> there: /tmp would clash
# with another such cluster (job ids start at 1 in each)
TmpFS=$S/tmp
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# the main scheduling loop starts requeued jobs; by default it runs once a minute
SchedulerParameters=bf_interval=1,sched_interval=2
ReturnToService=2
MinJobAge=3600
KillWait=10
NodeName=$host NodeAddr=127.0.0.1 CPUs=$ncpu RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
up=1 # from here on, cleanup cancels jobs (bounded waits) before stopping the daemons
slurmctld -f "$SLURM_CONF" || { daemon_logs; skip "slurmctld does not start here"; }
slurmd -f "$SLURM_CONF" || { daemon_logs; skip "slurmd does not start here"; }
for _ in $(seq 1 60); do [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && break; sleep 0.5; done
[ "$(sinfo -h -o %T 2>/dev/null)" = idle ] ||
  { sinfo 2>&1; daemon_logs; skip "the one-node cluster does not come up (node: $(sinfo -h -o %T 2>&1))"; }
srun --mpi=list 2>&1 | grep -qw pmix || skip "srun offers no pmix plugin: $(srun --mpi=list 2>&1 | tr '\n' ' ')"
echo "ok: one-node Slurm $(sinfo -V | awk '{print $2}') up on $host (ports $port1, $port2)"

# --- runs ---
steps=240
args=(--set "data.modalities.rna.file=$data/rna.h5ad" --set "data.modalities.adt.file=$data/adt.h5ad"
      --set "train.max_steps=$steps" --set train.checkpoint_seconds=0 --quiet)
# the numbers of a log: drop timing fields
numbers() { sed -e 's/"seconds": [^,]*, //' -e 's/"cells_per_s": [^,]*, //' -e 's/"ranks": [^,]*, //' "$1/log.jsonl"; }
same_numbers() { # ref run what
  [ "$(wc -l < "$1/log.jsonl")" -eq "$(wc -l < "$2/log.jsonl" 2>/dev/null || echo 0)" ] &&
    diff <(numbers "$1") <(numbers "$2") >/dev/null && return 0
  diff <(numbers "$1") <(numbers "$2") | head -4; fail "$3: the losses differ from the same run under mpirun"
}
export CLUE="$CLUE_BIN"
submit() { # name template sbatch-options... -- clue-args...: prints the job id
  local name="$1" template="$2"; shift 2
  local opts=()
  while [ "$1" != -- ]; do opts+=("$1"); shift; done; shift
  sbatch --parsable --chdir="$tmp" --output="$tmp/$name.out" --job-name="clue-$name" \
    --nodes=1 --cpus-per-task=1 --mem-per-cpu=1G "${opts[@]}" \
    "$src/jobs/$template.slurm" "$src/configs/cite.yaml" "$tmp/$name" "$@" 2>&1 |
    tee "$tmp/$name.sbatch" | tail -1
}
field() { scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }
wait_end() { # job seconds: wait until it has ended; prints its state
  local st=""
  for _ in $(seq 1 $(($2 * 2))); do
    st=$(field "$1" JobState)
    case "$st" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED) break;; esac
    sleep 0.5
  done
  echo "$st"
}
show() { echo "--- $1.out"; tail -15 "$tmp/$1.out" 2>/dev/null; }
epochs() { [ -f "$1/log.jsonl" ] && wc -l < "$1/log.jsonl" || echo 0; }
t0=$SECONDS

# 3 first (it waits for its guard): 1 rank, a 1-minute limit against the 300 s lead;
# the reference run under mpirun meanwhile (2 ranks, outside Slurm)
jg=$(submit guard single_node --ntasks-per-node=1 --time=1 -- "${args[@]}" --set train.max_steps=100000000)
[[ "$jg" =~ ^[0-9]+$ ]] || { cat "$tmp/guard.sbatch"; fail "sbatch jobs/single_node.slurm: $jg"; }
gsub=$(date +%s) gstart=$SECONDS
OPENBLAS_NUM_THREADS=1 $mpi -n 2 "$CLUE_BIN" train --config "$src/configs/cite.yaml" "${args[@]}" \
  --set "output.dir=$tmp/ref" > "$tmp/ref.out" 2>&1 || { tail -5 "$tmp/ref.out"; fail "reference run under mpirun"; }
[ "$(epochs "$tmp/ref")" -gt 10 ] || fail "reference run: $(epochs "$tmp/ref") epochs"
for _ in $(seq 1 240); do grep -q '"starts": 2' "$tmp/guard/run.json" 2>/dev/null && break; sleep 0.5; done
grep -q '"starts": 2' "$tmp/guard/run.json" 2>/dev/null ||
  { show guard; fail "guard: the job did not start again and resume (job $(field "$jg" JobState))"; }
# when slurmctld requeued it: "[2026-12-07T13:49:16.329] Requeuing JobId=6"
requeued=$(sed -n "s/^\[\([^].]*\)[^]]*\] Requeuing JobId=$jg\$/\1/p" "$S/log/slurmctld.log" | head -1)
after=$(( $(date -d "${requeued:-1970-01-01}" +%s) - gsub ))
scancel "$jg"
[ "$(wait_end "$jg" 60)" = CANCELLED ] || fail "guard: the job does not end when cancelled"
grep -q "the time left (60 s) is not more than the signal lead (300 s)" "$tmp/guard.out" ||
  { show guard; fail "guard: no warning for a time limit below the signal lead"; }
grep -q "Exited with exit code 75" "$tmp/guard.out" && grep -q "requeueing job $jg" "$tmp/guard.out" ||
  { show guard; fail "guard: no checkpoint (exit 75) and requeue"; }
grep -q "SLURM's early signal ignored" "$tmp/guard.out" ||
  { show guard; fail "guard: SLURM's own (immediate) signal did not come or was not ignored"; }
[ "$after" -ge 35 ] ||
  { show guard; fail "guard: requeued ${after} s after submission, expected ~45 s (SLURM's immediate signal passed on?)"; }
[ "$(field "$jg" Restarts)" -ge 1 ] || fail "guard: Restarts=$(field "$jg" Restarts)"
echo "ok: 1-minute limit, 300 s lead: warned, SLURM's signal ignored, checkpoint and requeue ${after} s after submission, started again ($((SECONDS - gstart)) s)"

# 1. single_node.slurm, uninterrupted
t=$SECONDS
ja=$(submit plain single_node --ntasks-per-node=2 --time=10 -- "${args[@]}")
[[ "$ja" =~ ^[0-9]+$ ]] || fail "sbatch jobs/single_node.slurm: $ja"
st=$(wait_end "$ja" 300)
[ "$st" = COMPLETED ] || { show plain; fail "single_node.slurm: job $st"; }
[ "$(field "$ja" ExitCode)" = 0:0 ] && [ "$(field "$ja" Restarts)" = 0 ] ||
  fail "single_node.slurm: ExitCode=$(field "$ja" ExitCode) Restarts=$(field "$ja" Restarts)"
grep -q '"ranks": 2,' "$tmp/plain/run.json" && grep -q '"status": "finished"' "$tmp/plain/run.json" ||
  fail "single_node.slurm: run.json does not say finished on 2 ranks"
same_numbers "$tmp/ref" "$tmp/plain" "single_node.slurm"
[ -s "$tmp/plain/embed/rna.h5ad" ] && [ -s "$tmp/plain/embed/adt.h5ad" ] ||
  { show plain; fail "single_node.slurm: no embedding"; }
echo "ok: single_node.slurm on 2 ranks: losses identical to mpirun, embedding written ($((SECONDS - t)) s)"

# 2. the requeue path: SIGUSR1 to the batch script after 3 epochs
t=$SECONDS
jb=$(submit requeue single_node --ntasks-per-node=2 --time=10 -- "${args[@]}")
[[ "$jb" =~ ^[0-9]+$ ]] || fail "sbatch jobs/single_node.slurm: $jb"
for _ in $(seq 1 480); do [ "$(epochs "$tmp/requeue")" -ge 3 ] && break; sleep 0.25; done
[ "$(epochs "$tmp/requeue")" -ge 3 ] || { show requeue; fail "requeue: the run did not start"; }
scancel --signal=USR1 --batch "$jb" || fail "scancel --signal=USR1 --batch"
st=$(wait_end "$jb" 300)
[ "$st" = COMPLETED ] || { show requeue; fail "requeue: job $st"; }
grep -q "Exited with exit code 75" "$tmp/requeue.out" || { show requeue; fail "requeue: no exit 75"; }
grep -q "checkpoint written before the time limit; requeueing job $jb" "$tmp/requeue.out" ||
  { show requeue; fail "requeue: the script did not requeue"; }
[ "$(field "$jb" Restarts)" = 1 ] || fail "requeue: Restarts=$(field "$jb" Restarts), expected 1"
grep -q '"starts": 2' "$tmp/requeue/run.json" || fail "requeue: run.json does not count 2 starts"
[ "$(epochs "$tmp/requeue")" -eq "$(epochs "$tmp/ref")" ] || fail "requeue: $(epochs "$tmp/requeue") epochs"
same_numbers "$tmp/ref" "$tmp/requeue" "requeue + resume"
[ -s "$tmp/requeue/embed/rna.h5ad" ] || fail "requeue: no embedding"
echo "ok: SIGUSR1 -> exit 75 -> requeued -> resumed: losses identical to the uninterrupted run ($((SECONDS - t)) s)"

# 4. multi_node.slurm on the one node there is (2 minutes: its guard warns)
t=$SECONDS
jd=$(submit multi multi_node --ntasks-per-node=2 --time=2 -- "${args[@]}")
[[ "$jd" =~ ^[0-9]+$ ]] || fail "sbatch jobs/multi_node.slurm: $jd"
st=$(wait_end "$jd" 400)
[ "$st" = COMPLETED ] || { show multi; fail "multi_node.slurm: job $st"; }
grep -q "the time left (1[0-9][0-9] s) is not more than the signal lead (600 s)" "$tmp/multi.out" ||
  { show multi; fail "multi_node.slurm: no warning for a time limit below the signal lead"; }
same_numbers "$tmp/ref" "$tmp/multi" "multi_node.slurm"
[ -s "$tmp/multi/embed/rna.h5ad" ] && [ -s "$tmp/multi/embed/adt.h5ad" ] ||
  { show multi; fail "multi_node.slurm: no embedding"; }
echo "ok: multi_node.slurm --nodes=1 ran end to end: losses identical, embedding written ($((SECONDS - t)) s)"
echo "PASS: test_slurm ($((SECONDS - t0)) s of jobs)"
