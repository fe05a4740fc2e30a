#!/usr/bin/env bash
# The main job end to end on this machine, with no Azure account: starts the bundled local
# emulators (managed identity, Key Vault over HTTPS, two Databricks workspaces, one of them with
# a service principal whose OAuth secret a target keeps), then shows a first
# provisioning, an idempotent re-run, a forced rotation with revocation, status as a health
# check, the custom handler answering the Functions host's timer and HTTP invocations (and the
# Status function), and what ended up where.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Building pat-rotator and the emulators"
cargo build --quiet --workspace --bins
BIN=target/debug/pat-rotator
EMU=target/debug/pat-rotator-emulators

DIR=$(mktemp -d)
cleanup() {
  [[ -n "${SERVE_PID:-}" ]] && kill "$SERVE_PID" 2>/dev/null || true
  [[ -n "${EMU_PID:-}" ]] && kill "$EMU_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT

say "Starting the local emulators"
# A Databricks-managed service principal in every workspace, whose OAuth secret target "etl" keeps.
SP_APP=0c0c0c0c-2222-4222-8222-cccccccccccc
"$EMU" --dir "$DIR" --workspaces 2 --vaults 1 --oauth-sp "$SP_APP" > "$DIR/emulators.log" 2>&1 &
EMU_PID=$!
for _ in $(seq 1 200); do grep -q "emulators ready" "$DIR/emulators.log" 2>/dev/null && break; sleep 0.05; done
grep -q "emulators ready" "$DIR/emulators.log" || { cat "$DIR/emulators.log"; exit 1; }
grep -v "^emulators ready" "$DIR/emulators.log"
# shellcheck disable=SC1091
. "$DIR/env.sh"   # IDENTITY_ENDPOINT/IDENTITY_HEADER (managed identity), SSL_CERT_FILE (the emulators' CA), URLs

export PAT_TARGETS="[
  {\"name\":\"analytics\",\"workspace_url\":\"$DATABRICKS_HOST_0\",\"key_vault_url\":\"$KEY_VAULT_URL_0\",\"secret_name\":\"analytics-pat\",\"revoke_grace_hours\":0},
  {\"name\":\"finance\",\"workspace_url\":\"$DATABRICKS_HOST_1\",\"workspace_resource_id\":\"$DATABRICKS_WORKSPACE_RESOURCE_ID_1\",\"key_vault_url\":\"$KEY_VAULT_URL_0\",\"secret_name\":\"finance-pat\",\"lifetime_days\":30,\"renew_before_days\":10},
  {\"name\":\"etl\",\"kind\":\"sp_oauth_secret\",\"service_principal\":\"$SP_APP\",\"workspace_url\":\"$DATABRICKS_HOST_1\",\"workspace_resource_id\":\"$DATABRICKS_WORKSPACE_RESOURCE_ID_1\",\"key_vault_url\":\"$KEY_VAULT_URL_0\",\"secret_name\":\"etl-sp-secret\",\"lifetime_days\":365}
]"
export RUST_LOG=warn

say "pat-rotator check-config"
"$BIN" check-config

say "pat-rotator rotate            # first run: provisions every target (two PATs and an OAuth secret)"
"$BIN" rotate

say "pat-rotator rotate            # second run: nothing to do, no write call"
"$BIN" rotate

say "pat-rotator rotate --force    # forced rotation; analytics has revoke_grace_hours=0, so its old token is revoked"
"$BIN" rotate --force

say "pat-rotator status            # a health check: exit 0 when every target is healthy, 1 when one needs attention"
"$BIN" status

say "The same engine as an Azure Functions custom handler"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
FUNCTIONS_CUSTOMHANDLER_PORT=$PORT "$BIN" serve > "$DIR/serve.log" 2>&1 &
SERVE_PID=$!
for _ in $(seq 1 200); do curl -fsS "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break; sleep 0.02; done
echo "GET / -> $(curl -sS "http://127.0.0.1:$PORT/")"
echo
echo "POST /RotatePat  (the timer invocation, as the Functions host sends it)"
curl -sS -X POST "http://127.0.0.1:$PORT/RotatePat" -H 'Content-Type: application/json; charset=utf-8' \
  -d '{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}},"Metadata":{"sys":{"MethodName":"RotatePat","UtcNow":"2026-11-26T03:00:00Z"}}}'
echo; echo
echo "POST /api/ProvisionPat {\"target\":\"finance\",\"force\":true}  (what Data Factory calls; finance was rotated"
echo "  a moment ago, so the forced call is declined by PAT_FORCE_COOLDOWN_MINUTES: recently_rotated)"
curl -sS -X POST "http://127.0.0.1:$PORT/api/ProvisionPat" -H 'Content-Type: application/json' -d '{"target":"finance","force":true}'
echo; echo
echo "POST /api/ProvisionPat {\"target\":\"nope\"}"
curl -sS -X POST "http://127.0.0.1:$PORT/api/ProvisionPat" -H 'Content-Type: application/json' -d '{"target":"nope"}' -w '  (HTTP %{http_code})'
echo; echo
echo "GET /api/Status  (the health check for a monitor or a release: rotated_by says self/other, never an object id)"
curl -sS "http://127.0.0.1:$PORT/api/Status" -w '  (HTTP %{http_code})'
echo
kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true; SERVE_PID=

say "What the emulators hold now (token ids and tags only; values never leave the vault)"
curl -sS "$EMULATOR_STATE_URL" > "$DIR/state.json"
python3 - "$DIR/state.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
for i, w in enumerate(s["workspaces"]):
    print(f"workspace {i} ({w['url']}): {len(w['live_tokens'])} live token(s)")
    for t in w["live_tokens"]:
        print(f"   {t['token_id'][:12]}…  {t['comment']}")
    for sp in w.get("service_principals", []):
        active = [x for x in sp["secrets"] if x["status"] == "ACTIVE"]
        if active:
            print(f"   service principal {sp['application_id']}: {len(active)} active OAuth secret(s)")
            for x in active:
                print(f"      {x['id'][:12]}…  expires {x['expire_time']}")
for i, v in enumerate(s["vaults"]):
    for sec in v["secrets"]:
        latest = sec["versions"][-1]["tags"]
        names = latest.get("databricks-token-id") or latest.get("databricks-secret-id") or "?"
        what = "token" if "databricks-token-id" in latest else "OAuth secret"
        print(f"vault {i}: secret {sec['name']}: {len(sec['versions'])} version(s); "
              f"latest names {what} {names[:12]}…, written by {latest.get('rotated-by', '?')[:8]}… via {latest.get('rotated-via', '?')}")
PY
say "Done: every secret holds a credential that its workspace accepts (each was verified before it was written)."
echo "analytics (revoke_grace_hours=0) keeps only its current token: each superseded one was revoked at once."
echo "finance keeps every token it superseded: nothing is revoked while the latest version is younger than its"
echo "24 h grace, however many rotations happened; the first run after that revokes them."
echo "etl holds an OAuth secret of service principal $SP_APP (at most five per principal): a consumer signs in with"
echo "the application id and that secret at the workspace's /oidc/v1/token; superseded secrets follow the same grace."
