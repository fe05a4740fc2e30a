#!/usr/bin/env bash
# Runs every test: the Rust unit and integration tests (engine, faults, concurrency, fuzz
# corpus, Python interop), the emulators' own tests, and the offline Terraform checks.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== Python clients for the interop test"
scripts/setup-python.sh
export PAT_ROTATOR_PYTHON="$PWD/.venv-interop/bin/python"

echo "== cargo test (workspace)"
cargo test --workspace --locked

echo "== Terraform and packaging checks (offline)"
scripts/check-infra.sh
