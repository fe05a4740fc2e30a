#!/usr/bin/env bash
# The simulator's soak (sim/README.md): COUNT schedules (default 100,000) of the deterministic
# simulator, release build, two threads; prints schedules per second and every failing seed
# with the command that replays it. The summary also goes to target/bench/sim-soak.txt.
#
#   bench/sim-soak.sh [COUNT] [soak options: --from N, --threads N, --bug NAME (needs a build
#                     with --features hunt)]
#
# Exit status: that of the soak (1 when a schedule broke an invariant).
# The binary needs the sim crate's feature `paused-clock` (tokio's test-util, kept out of the
# workspace build so that the service's binary never has it): its own release build, which the
# first time compiles the dependency tree once more (a few minutes). PAT_SIM_SKIP_BUILD=1 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."

count="${1:-100000}"
[ $# -gt 0 ] && shift
if [ "${PAT_SIM_SKIP_BUILD:-}" != 1 ]; then
  nice -n 10 cargo build --release -p pat-rotator-sim --features paused-clock --locked >&2
fi
mkdir -p target/bench
set +e
target/release/pat-rotator-sim soak --count "$count" "$@" | tee target/bench/sim-soak.txt
exit "${PIPESTATUS[0]}"
