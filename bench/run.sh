#!/usr/bin/env bash
# The one command of the benchmarks (bench/README.md): builds the release binaries, sets up the
# Python venv for the cold-start peer, runs every measurement and prints the table.
# Arguments go to the benchmark binary, e.g. `bench/run.sh --quick` or `--only cold,rt`.
# Results: stdout and target/bench/results.md. Takes about 3 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== release build (pat-rotator, emulators, benchmark)" >&2
nice -n 10 cargo build --release --workspace --bins --locked >&2

echo "== Python venv for the cold-start peer (.venv-interop)" >&2
if ! scripts/setup-python.sh >&2; then
  echo "warning: scripts/setup-python.sh failed; the Python peer will be skipped" >&2
fi

# ---- the simulator's soak (sim/README.md; bench/sim-soak.sh) -------------------------------
# 100,000 schedules of the deterministic simulator (about a minute on 2 cores, after its own
# release build: see bench/sim-soak.sh). Its summary and any failing seed go to stderr and
# target/bench/sim-soak.txt; a failure does not stop the benchmarks. PAT_SIM_SOAK=0 skips it.
if [ "${PAT_SIM_SOAK:-1}" != 0 ]; then
  echo "== simulator soak (bench/sim-soak.sh 100000)" >&2
  if ! bench/sim-soak.sh 100000 >&2; then
    echo "warning: the simulator found schedules that break an invariant (target/bench/sim-soak.txt)" >&2
  fi
fi
# ---- end of the simulator's block ----------------------------------------------------------

echo "== benchmark" >&2
exec target/release/pat-rotator-bench "$@"
