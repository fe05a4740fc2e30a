#!/usr/bin/env bash
# The simulator's soak (sim/README.md): COUNT schedules (default 1,000,000) of the deterministic
# simulator on every core of the machine (each schedule is single-threaded; threads take seeds
# from a shared counter), built with the profile `sim` (release optimisation without fat LTO,
# unwinding on panic). Prints the wall time, schedules per second, what the schedules exercised
# (exceptions and observations) and every failing seed with the command that replays it. The
# summary also goes to target/bench/sim-soak.txt.
#
#   bench/sim-soak.sh [COUNT] [soak options: --from N, --threads N, --show N,
#                     --bug NAME (needs a build with --features hunt)]
#
# Exit status: that of the soak (1 when a schedule broke an invariant).
# The binary needs the sim crate's feature `paused-clock` (tokio's test-util, kept out of the
# workspace build so that the service's binary never has it): its own build, which the first
# time compiles the dependency tree once more (a few minutes). PAT_SIM_SKIP_BUILD=1 skips it.
#
# Resumable: with PAT_SIM_SOAK_CHUNK=N (say 100000) the seeds run in chunks of N, each chunk's
# summary kept in target/bench/sim-soak-<commit>/ and the binary pinned there (a build meanwhile
# changes nothing), so a run stopped between chunks (a session that ends: a million schedules
# take about 3 hours of two cores) goes on where it stopped when run again at the same commit,
# with the same COUNT (and the same code and simulator). The wall time printed at the end is the sum of the chunks'.
# A finished chunk's summary is also copied to bench/soak/<commit>/, which is committed: a later
# session at the same code (the chunks are keyed to the last commit that changed src, sim,
# Cargo.toml or Cargo.lock, documents aside) takes those chunks as run and runs only the rest, on a binary built
# from the same code (the schedules are deterministic).
set -euo pipefail
cd "$(dirname "$0")/.."

count="${1:-1000000}"
[ $# -gt 0 ] && shift
if [ "${PAT_SIM_SKIP_BUILD:-}" != 1 ]; then
  nice -n 10 cargo build --profile sim -p pat-rotator-sim --features paused-clock --locked >&2
fi
threads="$(nproc 2>/dev/null || echo 2)"
mkdir -p target/bench
chunk="${PAT_SIM_SOAK_CHUNK:-}"
if [ -z "$chunk" ]; then
  set +e
  start=$(date +%s)
  target/sim/pat-rotator-sim soak --count "$count" --threads "$threads" "$@" | tee target/bench/sim-soak.txt
  status="${PIPESTATUS[0]}"
  echo "wall time: $(( $(date +%s) - start )) s for $count schedules on $threads thread(s)" | tee -a target/bench/sim-soak.txt
  exit "$status"
fi

# The last commit that changed the code or the simulator: a commit of documents (*.md, such as
# sim/README.md) keeps the chunks.
code=(src sim Cargo.toml Cargo.lock ':(exclude)*.md')
commit="$(git log -1 --format=%h --abbrev=12 -- "${code[@]}")$(git diff --quiet HEAD -- "${code[@]}" || echo -dirty)"
dir="target/bench/sim-soak-$commit"
kept="bench/soak/$commit"
mkdir -p "$dir"
[ -x "$dir/pat-rotator-sim" ] || cp target/sim/pat-rotator-sim "$dir/pat-rotator-sim"
status=0
total=0
failed=0
for (( from = 0; from < count; from += chunk )); do
  n=$(( count - from < chunk ? count - from : chunk ))
  out="$dir/seeds-$from-$(( from + n )).txt"
  if { [ ! -s "$out" ] || ! grep -q '^wall time: ' "$out"; } && [ -s "$kept/${out##*/}" ]; then
    cp "$kept/${out##*/}" "$out"
  fi
  if [ ! -s "$out" ] || ! grep -q '^wall time: ' "$out"; then
    start=$(date +%s)
    set +e
    "$dir/pat-rotator-sim" soak --from "$from" --count "$n" --threads "$threads" "$@" > "$out.part"
    s=$?
    set -e
    echo "wall time: $(( $(date +%s) - start )) s" >> "$out.part"
    mv "$out.part" "$out"
    case "$commit" in *-dirty) ;; *) mkdir -p "$kept" && cp "$out" "$kept/" ;; esac
    [ "$s" -ne 0 ] && status="$s"
  fi
  secs=$(sed -n 's/^wall time: \([0-9]*\) s$/\1/p' "$out")
  total=$(( total + secs ))
  grep '^soak: ' "$out"
  grep -q '; 0 failed$' "$out" || { failed=1; grep -A3 -i 'seed' "$out" | head -20; }
done
echo "wall time: $total s (sum of the chunks in $dir) for $count schedules on $threads thread(s)" | tee target/bench/sim-soak.txt
[ "$failed" -eq 1 ] && status=1
exit "$status"
