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

echo "== benchmark" >&2
exec target/release/pat-rotator-bench "$@"
