#!/usr/bin/env bash
# Creates .venv-interop with the real Python Azure and Databricks clients the interop test
# uses (pinned in tests/interop/requirements.txt). Quick when it already exists.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-interop
REQ=tests/interop/requirements.txt
STAMP="$VENV/.requirements.sha256"
want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  exit 0
fi
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
echo "$want" > "$STAMP"
