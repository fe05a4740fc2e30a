#!/usr/bin/env bash
# Calls the deployed Function App's ProvisionPat function for one target and waits,
# within a bound, until it succeeds. Used by `terraform apply` (infra/deploy.tf) right
# after the code and the role assignments were deployed, when Azure is still
# propagating them; usable by hand too.
#
#   POST $PROVISION_URL   x-functions-key: <key>   {"target":"<name>"}
#   200 -> {"target":..., "action":"created|rotated|unchanged|reprovisioned", ...}
#   4xx/5xx -> {"error":{"code":"...","message":"..."}}; 503 throttled has Retry-After
#
# Environment:
#   PROVISION_URL                      https://<app>.azurewebsites.net/api/ProvisionPat
#                                      (plain http only for a loopback host)
#   PROVISION_TARGET                   target name (^[a-z0-9][a-z0-9-]{0,62}$)
#   PROVISION_FUNCTION_KEY             function key. A secret: it is sent only in the
#                                      x-functions-key header (never on a command line,
#                                      never in the URL) and never printed.
#   PROVISION_TIMEOUT_SECONDS          give up after this long (default 1200)
#   PROVISION_INITIAL_DELAY_SECONDS    first pause between attempts (default 5)
#   PROVISION_MAX_DELAY_SECONDS        longest pause between attempts (default 60)
#   PROVISION_REQUEST_TIMEOUT_SECONDS  one request's limit (default 240; Azure cuts HTTP
#                                      functions at 230 s)
#   PROVISION_UNKNOWN_TARGET_GRACE_SECONDS
#                                      how long "unknown_target" is retried, for an app
#                                      that is still restarting with its old settings
#                                      (default 180)
#
# Exit status: 0 provisioned; 1 failed with an error retrying cannot fix; 2 usage or
# configuration error of this script (nothing was sent); 3 gave up after the bounded
# wait. The PAT never appears in a response, and this script prints only selected
# fields of it (target, action, reason, secret_id, token_id, expires_at, error code
# and message), with the function key redacted from anything it prints.
set -uo pipefail

prog="provision"

usage_error() {
  echo "$prog: usage error: $*" >&2
  exit 2
}

# --- inputs -------------------------------------------------------------------------
url="${PROVISION_URL:-}"
target="${PROVISION_TARGET:-}"
key="${PROVISION_FUNCTION_KEY:-}"
timeout_s="${PROVISION_TIMEOUT_SECONDS:-1200}"
delay_s="${PROVISION_INITIAL_DELAY_SECONDS:-5}"
max_delay_s="${PROVISION_MAX_DELAY_SECONDS:-60}"
request_timeout_s="${PROVISION_REQUEST_TIMEOUT_SECONDS:-240}"
unknown_grace_s="${PROVISION_UNKNOWN_TARGET_GRACE_SECONDS:-180}"

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

[[ -n "$url" ]] || usage_error "PROVISION_URL is not set"
[[ -n "$target" ]] || usage_error "PROVISION_TARGET is not set"
[[ "$target" =~ ^[a-z0-9][a-z0-9-]{0,62}$ ]] || usage_error "PROVISION_TARGET '$target' is not a valid target name"
[[ -n "$key" ]] || usage_error "PROVISION_FUNCTION_KEY is not set"
# Function keys are base64/base64url text. Anything else (quotes, spaces, newlines)
# would break the header, so refuse it -- without printing it.
[[ "$key" =~ ^[A-Za-z0-9+/=_.~-]{1,1024}$ ]] || usage_error "PROVISION_FUNCTION_KEY contains characters a function key cannot have (value not shown)"
for v in timeout_s delay_s max_delay_s request_timeout_s unknown_grace_s; do
  is_uint "${!v}" || usage_error "$v must be a whole number of seconds, got '${!v}'"
done
[[ "$delay_s" -ge 1 ]] || delay_s=1
[[ "$request_timeout_s" -ge 1 ]] || request_timeout_s=1

if [[ "$url" =~ ^https://[^/?#]+(/[^?#]*)?$ ]]; then
  :
elif [[ "$url" =~ ^http://(127\.[0-9]+\.[0-9]+\.[0-9]+|localhost|\[::1\])(:[0-9]+)?(/[^?#]*)?$ ]]; then
  : # loopback test server only
else
  # Print no query string: a function key in ?code= must not reach the logs.
  usage_error "PROVISION_URL must be an https:// URL without query string (plain http only for loopback), got '${url%%[?#]*}'"
fi
command -v curl >/dev/null || usage_error "curl is required"

# --- helpers ------------------------------------------------------------------------
redact() {
  # Never let the key through, whatever a server echoed back; nor anything shaped like
  # a Databricks PAT (the contract says responses never hold one: belt and braces).
  local text="$1"
  text="${text//"$key"/[redacted]}"
  printf '%s' "$text" | sed -E 's/dapi[0-9A-Za-z_-]{8,}/dapi[redacted]/g'
}

say() { printf '%s[%s]: %s\n' "$prog" "$target" "$(redact "$*")" >&2; }

# First string value of "<field>" in a JSON document, with the common escapes undone
# and control characters dropped; at most 300 characters. Good enough for the flat
# fields of the contract's result and error objects.
json_str() {
  local file="$1" field="$2" value
  value="$(tr '\r\n\t' '   ' <"$file" |
    grep -o -E '"'"$field"'"[[:space:]]*:[[:space:]]*"([^"\\]|\\.)*"' | head -n 1 |
    sed -E -e 's/^"[^"]*"[[:space:]]*:[[:space:]]*"//' -e 's/"$//' -e 's/\\"/"/g' -e 's/\\[nrt]/ /g' -e 's/\\\\/\\/g')"
  printf '%s' "$value" | tr -d '\000-\037' | cut -c1-300
}

header_value() { # $1 header file, $2 lower-case header name
  tr -d '\r' <"$1" | awk -v h="$2" 'tolower($0) ~ "^"h":" {sub(/^[^:]*:[[:space:]]*/, ""); v=$0} END{print v}'
}

now() { date +%s; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/provision.XXXXXX")" || usage_error "cannot create a temporary directory"
chmod 700 "$tmp"
trap 'rm -rf "$tmp"' EXIT

payload="{\"target\":\"$target\"}"
start="$(now)"
deadline=$((start + timeout_s))
attempt=0
unknown_since=""
last_problem=""
last_hint=""

hint_for() {
  case "$1" in
    keyvault_forbidden)
      echo "the Function App identity cannot write the secret yet: its vault role assignment (custom secrets writer, or Key Vault Secrets Officer) is still propagating (minutes), or a token minted before the assignment is still cached (managed-identity tokens are cached up to ~8 h)" ;;
    databricks_unauthorized | databricks_forbidden)
      echo "the workspace does not accept the Function App identity yet: its workspace access (Contributor on the workspace resource, or the workspace service principal with token CAN_USE) is still propagating, or an older cached token is in use" ;;
    identity_unavailable)
      echo "the managed identity endpoint of the app is not ready yet" ;;
    function_key_rejected)
      echo "the host does not accept the function key yet (it is loaded after a deployment or restart); if this persists, the key is wrong" ;;
    not_found)
      echo "the function is not (yet) loaded: the package may still be deploying, or it lacks ProvisionPat" ;;
    unknown_target)
      echo "the running app's PAT_TARGETS does not list this target: the app may still be restarting with its previous settings" ;;
    *) echo "" ;;
  esac
}

# --- main loop ----------------------------------------------------------------------
while :; do
  attempt=$((attempt + 1))
  remaining=$((deadline - $(now)))
  if [[ "$remaining" -le 0 ]]; then
    break
  fi
  this_timeout="$request_timeout_s"
  [[ "$this_timeout" -gt "$remaining" ]] && this_timeout="$remaining"

  : >"$tmp/body"
  : >"$tmp/headers"
  # -q: ignore ~/.curlrc. The key travels in a curl config read from stdin, so it is
  # neither in curl's argv (visible in `ps`) nor in a file.
  status="$(printf 'header = "x-functions-key: %s"\n' "$key" |
    curl -q --config - --silent --show-error \
      --request POST --header "Content-Type: application/json" --data-binary "$payload" \
      --connect-timeout 15 --max-time "$this_timeout" \
      --output "$tmp/body" --dump-header "$tmp/headers" --write-out '%{http_code}' \
      "$url" 2>"$tmp/curl_err")"
  curl_rc=$?

  retry=1
  wait_s="$delay_s"
  code=""
  message=""

  if [[ "$curl_rc" -ne 0 ]]; then
    problem="could not complete the request (curl exit $curl_rc: $(head -c 300 "$tmp/curl_err" | tr -d '\000-\037'))"
    last_hint="the app's host name may not resolve yet, or the app is starting"
  else
    code="$(json_str "$tmp/body" code)"
    message="$(json_str "$tmp/body" message)"
    retry_after="$(header_value "$tmp/headers" retry-after)"
    if is_uint "$retry_after" && [[ "$retry_after" -ge 1 ]]; then
      wait_s="$retry_after"
    fi
    case "$status" in
      200)
        action="$(json_str "$tmp/body" action)"
        case "$action" in
          created | rotated | unchanged | reprovisioned | planned)
            reason="$(json_str "$tmp/body" reason)"
            secret_id="$(json_str "$tmp/body" secret_id)"
            token_id="$(json_str "$tmp/body" token_id)"
            expires_at="$(json_str "$tmp/body" expires_at)"
            summary="$action${reason:+ ($reason)}"
            [[ -n "$secret_id" ]] && summary="$summary, secret $secret_id"
            [[ -n "$token_id" ]] && summary="$summary, token id $token_id"
            [[ -n "$expires_at" ]] && summary="$summary, expires $expires_at"
            printf '%s[%s]: %s after %d attempt(s), %ds\n' "$prog" "$target" "$(redact "$summary")" "$attempt" "$(($(now) - start))"
            exit 0
            ;;
          failed)
            problem="ProvisionPat reported action \"failed\"${code:+: $code}${message:+: $message}"
            ;;
          *)
            problem="HTTP 200 without a result object"
            ;;
        esac
        ;;
      400 | 405 | 413 | 415)
        problem="HTTP $status${code:+ $code}${message:+: $message}"
        retry=0
        ;;
      401 | 403)
        problem="HTTP $status: function key rejected"
        code="function_key_rejected"
        ;;
      404)
        if [[ "$code" == "unknown_target" ]]; then
          problem="HTTP 404 unknown_target${message:+: $message}"
          [[ -n "$unknown_since" ]] || unknown_since="$(now)"
          if [[ $(($(now) - unknown_since)) -ge "$unknown_grace_s" ]]; then
            retry=0
          fi
        else
          problem="HTTP 404: ProvisionPat not found"
          code="not_found"
        fi
        ;;
      408 | 409 | 425 | 429)
        problem="HTTP $status${code:+ $code}${message:+: $message}"
        ;;
      5??)
        problem="HTTP $status${code:+ $code}${message:+: $message}"
        ;;
      *)
        problem="HTTP $status${code:+ $code}${message:+: $message}"
        retry=0
        ;;
    esac
    # Upstream errors that no retry can fix (contract §5).
    case "$code" in
      config_invalid | invalid_request | keyvault_secret_deleted | databricks_quota_exceeded | databricks_lifetime_too_long)
        retry=0 ;;
    esac
    [[ "$code" != "unknown_target" ]] && unknown_since=""
    last_hint="$(hint_for "$code")"
  fi
  last_problem="$problem"

  if [[ "$retry" -eq 0 ]]; then
    say "FAILED (attempt $attempt): $problem"
    case "$code" in
      unknown_target) say "the deployed app does not know target '$target': its PAT_TARGETS differs from Terraform's targets (is the latest configuration applied?)" ;;
      keyvault_secret_deleted) say "the secret name is soft-deleted in the vault: recover or purge it, then apply again" ;;
      config_invalid) say "the app rejects its own configuration (PAT_TARGETS and the other settings): see its logs in Application Insights" ;;
      databricks_quota_exceeded) say "the identity has too many tokens in the workspace (600 per identity): revoke unused ones" ;;
      databricks_lifetime_too_long) say "lifetime_days exceeds the workspace's maxTokenLifetimeDays: lower it for this target" ;;
    esac
    exit 1
  fi

  remaining=$((deadline - $(now)))
  if [[ "$wait_s" -ge "$remaining" ]]; then
    break
  fi
  say "attempt $attempt: $problem${last_hint:+ -- $last_hint}; retrying in ${wait_s}s (${remaining}s left)"
  sleep "$wait_s"
  delay_s=$((delay_s * 2))
  [[ "$delay_s" -gt "$max_delay_s" ]] && delay_s="$max_delay_s"
  [[ "$delay_s" -lt 1 ]] && delay_s=1
done

say "GAVE UP after $attempt attempt(s) in $(($(now) - start))s (limit ${timeout_s}s): ${last_problem:-no attempt completed}"
[[ -n "$last_hint" ]] && say "likely cause: $last_hint"
say "the secret of target '$target' was NOT provisioned by this apply. Re-run \`terraform apply\` later (nothing else changes), or provision from a shell with the CLI: see infra/README.md \"Provisioning without Terraform\"."
exit 3
