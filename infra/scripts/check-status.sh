#!/usr/bin/env bash
# Checks a deployment: GET the Function App's Status function and fail unless it answers 200
# with every target healthy (contract section 3: an array of `status --json` objects, each
# with target, healthy, attention, error). Run by the release workflow after each deploy
# (.github/workflows/release.yml; docs/RELEASE.md has the Azure DevOps equivalent); usable
# by hand too.
#
#   GET $STATUS_URL   x-functions-key: <key>
#   200 -> [{"target": "...", "healthy": true|false, "attention": ["..."], "error": null|{code, message}, ...}]
#   500 -> {"error": {"code": "config_invalid", "message": "..."}}
#
# Right after a deployment the host may not have loaded the function or its keys yet (404,
# 401/403), or may be restarting (502/503/504, connection errors): those are retried, with
# back-off, for at most STATUS_TIMEOUT_SECONDS. Any other answer decides at once.
#
# Environment:
#   STATUS_URL                    https://<app>.azurewebsites.net/api/Status (plain http only for loopback)
#   STATUS_FUNCTION_KEY           a function key of the app. A secret: sent only in the
#                                 x-functions-key header (never on a command line, never in
#                                 the URL) and never printed.
#   STATUS_TIMEOUT_SECONDS        how long to retry a host that is not ready (default 600)
#   STATUS_INITIAL_DELAY_SECONDS  first pause between attempts, doubled up to 60 (default 5)
#   STATUS_REQUEST_TIMEOUT_SECONDS one request's limit (default 120; Status reads every target
#                                 within 60 s)
#
# Exit status: 0 every target healthy; 1 a target needs attention, or the app answered an
# error; 2 usage error (nothing was sent); 3 gave up waiting for the app.
set -uo pipefail

prog="check-status"
usage_error() {
  echo "$prog: usage error: $*" >&2
  exit 2
}

url="${STATUS_URL:-}"
key="${STATUS_FUNCTION_KEY:-}"
timeout_s="${STATUS_TIMEOUT_SECONDS:-600}"
delay="${STATUS_INITIAL_DELAY_SECONDS:-5}"
request_timeout_s="${STATUS_REQUEST_TIMEOUT_SECONDS:-120}"

[[ -n "$url" ]] || usage_error "STATUS_URL is not set"
if [[ "$url" =~ ^https://[^/?#@]+(/[^?#]*)?$ ]]; then
  :
elif [[ "$url" =~ ^http://(127\.[0-9]+\.[0-9]+\.[0-9]+|localhost|\[::1\])(:[0-9]+)?(/[^?#]*)?$ ]]; then
  : # loopback test server only
else
  # Print no query string: a function key in ?code= must not reach the logs.
  usage_error "STATUS_URL must be an https:// URL without query string (plain http only for loopback), got '${url%%[?#]*}'"
fi
[[ -n "$key" ]] || usage_error "STATUS_FUNCTION_KEY is not set"
# Function keys are base64/base64url text; anything else would break the header.
[[ "$key" =~ ^[A-Za-z0-9+/=_.~-]{1,1024}$ ]] || usage_error "STATUS_FUNCTION_KEY contains characters a function key cannot have (value not shown)"
for v in timeout_s delay request_timeout_s; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || usage_error "$v must be a whole number of seconds, got '${!v}'"
done
[[ "$delay" -ge 1 ]] || delay=1
command -v curl >/dev/null || usage_error "curl is required"
command -v python3 >/dev/null || usage_error "python3 is required"

redact() { local text="$1"; printf '%s' "${text//"$key"/[redacted]}"; }
say() { printf '%s: %s\n' "$prog" "$(redact "$*")" >&2; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/check-status.XXXXXX")" || usage_error "cannot create a temporary directory"
chmod 700 "$tmp"
trap 'rm -rf "$tmp"' EXIT

deadline=$((SECONDS + timeout_s))
attempt=0
while :; do
  attempt=$((attempt + 1))
  : >"$tmp/body"
  # -q: ignore ~/.curlrc. The key travels in a curl config read from stdin.
  status="$(printf 'header = "x-functions-key: %s"\n' "$key" |
    curl -q --config - --silent --show-error --connect-timeout 15 --max-time "$request_timeout_s" \
      --header "Accept: application/json" --output "$tmp/body" --write-out '%{http_code}' "$url" 2>"$tmp/curl_err")"
  curl_rc=$?
  if [[ "$curl_rc" -ne 0 ]]; then
    problem="no answer (curl exit $curl_rc: $(head -c 300 "$tmp/curl_err" | tr -d '\000-\037'))"
  else
    case "$status" in
      200)
        # The verdict and the report: one line per target, the reasons of each unhealthy one.
        python3 - "$tmp/body" <<'PY'
import json, os, sys

KEY = os.environ["STATUS_FUNCTION_KEY"]

def clean(value, limit=300):
    """Printable, short, and never the function key, whatever the app echoed back."""
    text = str(value).replace(KEY, "[redacted]")
    return "".join(c if c.isprintable() else " " for c in text)[:limit]

try:
    rows = json.load(open(sys.argv[1], encoding="utf-8"))
except ValueError as exc:
    print(f"check-status: HTTP 200, but the body is not JSON: {exc}", file=sys.stderr)
    sys.exit(1)
if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("target"), str) and isinstance(r.get("healthy"), bool) for r in rows):
    print("check-status: HTTP 200, but the body is not the Status answer (an array of objects with target and healthy)", file=sys.stderr)
    sys.exit(1)
if not rows:
    print("check-status: the app reports no target", file=sys.stderr)
    sys.exit(1)
unhealthy = [r for r in rows if not r["healthy"]]
for r in rows:
    if r["healthy"]:
        print(f"check-status: {clean(r['target'], 64)}: healthy (days left {r.get('days_left')})")
for r in unhealthy:
    reasons = [clean(a, 64) for a in (r.get("attention") or [])]
    err = r.get("error") or {}
    detail = f"; error {clean(err.get('code'), 64)}: {clean(err.get('message'))}" if isinstance(err, dict) and err.get("code") else ""
    print(f"check-status: {clean(r['target'], 64)}: NEEDS ATTENTION: {', '.join(reasons) or 'no reason given'}{detail}", file=sys.stderr)
if unhealthy:
    print(f"check-status: {len(unhealthy)} of {len(rows)} targets need attention (docs/RUNBOOK.md has each reason)", file=sys.stderr)
    sys.exit(1)
print(f"check-status: all {len(rows)} targets healthy")
PY
        exit $?
        ;;
      404 | 401 | 403 | 429 | 502 | 503 | 504)
        problem="HTTP $status$([[ "$status" == 404 ]] && echo ": Status not (yet) loaded")$([[ "$status" == 401 || "$status" == 403 ]] && echo ": function key not (yet) accepted")"
        ;;
      *)
        detail="$(python3 -c 'import json,sys; e=json.load(open(sys.argv[1])).get("error") or {}; print(str(e.get("code",""))[:64], str(e.get("message",""))[:300])' "$tmp/body" 2>/dev/null || head -c 300 "$tmp/body")"
        say "HTTP $status: $(printf '%s' "$detail" | tr -d '\000-\037')"
        [[ "$status" == 500 ]] && say "the app rejects its configuration (config_invalid) or failed: see its logs in Application Insights (infra/README.md, \"The alarm\")"
        exit 1
        ;;
    esac
  fi
  if ((SECONDS + delay > deadline)); then
    say "attempt $attempt: $problem; gave up after ${timeout_s}s"
    exit 3
  fi
  say "attempt $attempt: $problem; retrying in ${delay}s"
  sleep "$delay"
  delay=$((delay * 2 > 60 ? 60 : delay * 2))
done
