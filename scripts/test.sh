#!/usr/bin/env bash
# Runs every test: the Rust unit and integration tests (engine, findings, OAuth secrets, faults,
# concurrency, fuzz corpus, Python interop, targets from a blob read from Azurite), the
# emulators' own tests, the deterministic simulator (2,000 schedules, and its hunt of nine old
# defects), and the offline Terraform and release checks.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== libfaketime for the clock-jump test (Debian package faketime)"
if ! ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q faketime >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q faketime >/dev/null; }
  else
    echo "warning: faketime is not installed and cannot be installed here; the clock-jump test will skip (it fails under CI=true)" >&2
  fi
fi

echo "== Python clients for the interop test"
scripts/setup-python.sh
export PAT_ROTATOR_PYTHON="$PWD/.venv-interop/bin/python"

# Azurite, the Azure Storage emulator, for the PAT_TARGETS_BLOB tests (tests/targets_sources.rs):
# installed from npm into .venv-azurite (gitignored, like the other tool caches). 3.35.0 is the
# newest that runs on Node 20 (3.37 needs Node 22).
AZURITE_PIN="azurite@3.35.0"
echo "== Azurite for the targets-blob tests (npm ${AZURITE_PIN})"
azurite_js=".venv-azurite/node_modules/azurite/dist/src/blob/main.js"
if [[ -f .venv-azurite/.pins && "$(cat .venv-azurite/.pins)" == "$AZURITE_PIN" && -f "$azurite_js" ]]; then
  echo "Azurite: $azurite_js"
elif command -v npm >/dev/null && command -v node >/dev/null; then
  rm -rf .venv-azurite && mkdir -p .venv-azurite
  if (cd .venv-azurite && npm install --silent --no-audit --no-fund --no-save --prefix . "$AZURITE_PIN" >/dev/null 2>&1) &&
    [[ -f "$azurite_js" ]]; then
    echo "$AZURITE_PIN" >.venv-azurite/.pins
    echo "Azurite: installed $AZURITE_PIN"
  else
    echo "warning: npm install $AZURITE_PIN failed: the targets-blob tests skip (they fail under CI=true)" >&2
  fi
else
  echo "warning: no npm/node: the targets-blob tests skip (they fail under CI=true)" >&2
fi

echo "== cargo test (workspace: unit, integration, emulators, bench pacing, the simulator's 2,000 schedules)"
cargo test --workspace --locked

echo "== the old defects of the core (old_defects), switched back on, each break the in-memory scenario that guards it"
cargo test --features sim-bugs --test rotation_core --locked old_defects

echo "== the simulator's hunt: each of nine old defects, switched back on, is found from generic schedules"
cargo test -p pat-rotator-sim --features hunt --test hunt --locked

echo "== Terraform and packaging checks (offline)"
scripts/check-infra.sh
