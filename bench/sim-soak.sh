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
set -euo pipefail
cd "$(dirname "$0")/.."

count="${1:-1000000}"
[ $# -gt 0 ] && shift
if [ "${PAT_SIM_SKIP_BUILD:-}" != 1 ]; then
  nice -n 10 cargo build --profile sim -p pat-rotator-sim --features paused-clock --locked >&2
fi
threads="$(nproc 2>/dev/null || echo 2)"
mkdir -p target/bench
set +e
start=$(date +%s)
target/sim/pat-rotator-sim soak --count "$count" --threads "$threads" "$@" | tee target/bench/sim-soak.txt
status="${PIPESTATUS[0]}"
echo "wall time: $(( $(date +%s) - start )) s for $count schedules on $threads thread(s)" | tee -a target/bench/sim-soak.txt
exit "$status"
