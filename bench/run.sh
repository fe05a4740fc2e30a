#!/usr/bin/env bash
# The one command of the benchmarks (bench/README.md): builds the release binaries, sets up the
# Python venv for the cold-start peer, runs every measurement and prints the table.
# Arguments go to the benchmark binary, e.g. `bench/run.sh --quick` or `--only cold,rt`.
# Results: stdout and target/bench/results.md. Takes about 3 minutes plus the simulator's soak
# (below; PAT_SIM_SOAK=0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== release build (pat-rotator, emulators, benchmark)" >&2
nice -n 10 cargo build --release --workspace --bins --locked >&2

echo "== Python venv for the cold-start peer (.venv-interop)" >&2
if ! scripts/setup-python.sh >&2; then
  echo "warning: scripts/setup-python.sh failed; the Python peer will be skipped" >&2
fi

# ---- the simulator's soak (sim/README.md; bench/sim-soak.sh) -------------------------------
# 1,000,000 schedules of the deterministic simulator at the wire, on every core (about 100
# schedules per second on this 2-core machine: close to 3 hours, after its own build; see
# bench/sim-soak.sh). PAT_SIM_SOAK_COUNT=N runs N instead; PAT_SIM_SOAK=0 skips it. Its summary
# and any failing seed go to stderr and target/bench/sim-soak.txt; a failure does not stop the
# benchmarks.
if [ "${PAT_SIM_SOAK:-1}" != 0 ]; then
  count="${PAT_SIM_SOAK_COUNT:-1000000}"
  echo "== simulator soak (bench/sim-soak.sh $count)" >&2
  if ! bench/sim-soak.sh "$count" >&2; then
    echo "warning: the simulator found schedules that break an invariant (target/bench/sim-soak.txt)" >&2
  fi
fi
# ---- end of the simulator's block ----------------------------------------------------------

echo "== benchmark" >&2
exec target/release/pat-rotator-bench "$@"
