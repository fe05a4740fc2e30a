#!/usr/bin/env bash
# Gives a group token CAN_USE in an existing Databricks workspace by ADDING one entry to the
# workspace's token permissions, without removing any other (infra/modules/pat-rotator/
# databricks.tf, terraform_data.grant_token_use). Run by `terraform apply` once per workspace.
#
#   PATCH $GRANT_WORKSPACE_URL/api/2.0/permissions/authorization/tokens
#         {"access_control_list":[{"group_name":"<group>","permission_level":"CAN_USE"}]}
#
# PATCH adds or updates the listed entries and keeps the rest; PUT (what the databricks
# provider's databricks_permissions sends) replaces the whole ACL, and removing a
# principal's CAN_USE revokes its tokens. Sent as the Azure CLI's identity with a bearer
# token for Azure Databricks only (no Azure management headers: the caller is a workspace
# admin in its own right, and needs no Azure role on the workspace). Changing token
# permissions is admin-only.
#
# Environment:
#   GRANT_WORKSPACE_URL            https://adb-....azuredatabricks.net (http only for loopback)
#   GRANT_GROUP_NAME               the group (default pat-rotator)
#   GRANT_TIMEOUT_SECONDS          retry 429/5xx/connection errors this long (default 300)
#   GRANT_INITIAL_DELAY_SECONDS    first pause between attempts, doubled up to 60 (default 5)
#   AZ                             the Azure CLI (default az)
#
# Exit status: 0 the group holds CAN_USE; 1 failed; 2 usage error (nothing was sent);
# 3 gave up. Nothing secret is printed: the Entra token goes to curl in a mode-600 config
# file, never onto a command line.
set -uo pipefail

prog="grant-token-use"
say() { echo "$prog: $*" >&2; }
usage_error() {
  say "usage error: $*"
  exit 2
}

url="${GRANT_WORKSPACE_URL:-}"
group="${GRANT_GROUP_NAME:-pat-rotator}"
timeout_s="${GRANT_TIMEOUT_SECONDS:-300}"
delay="${GRANT_INITIAL_DELAY_SECONDS:-5}"
az="${AZ:-az}"

[[ -n "$url" ]] || usage_error "GRANT_WORKSPACE_URL is not set"
[[ "$url" =~ ^https://[A-Za-z0-9.-]+(:[0-9]+)?/?$ || "$url" =~ ^http://(127\.[0-9.]+|localhost)(:[0-9]+)?/?$ ]] ||
  usage_error "GRANT_WORKSPACE_URL '${url%%[?#]*}' must be an https:// workspace URL (Entra ID tokens are sent to it)"
url="${url%/}"
# Embedded in JSON below: letters, digits, space, dot, underscore, hyphen only.
[[ "$group" =~ ^[A-Za-z0-9][A-Za-z0-9\ ._-]{0,99}$ ]] || usage_error "GRANT_GROUP_NAME '$group' is not a plain group name"
[[ "$timeout_s" =~ ^[0-9]+$ ]] || usage_error "GRANT_TIMEOUT_SECONDS must be an integer"
[[ "$delay" =~ ^[0-9]+$ && "$delay" -ge 1 ]] || usage_error "GRANT_INITIAL_DELAY_SECONDS must be a positive integer"
command -v "$az" >/dev/null || usage_error "the Azure CLI ($az) is needed (log in with az login)"
command -v curl >/dev/null || usage_error "curl is needed"
command -v python3 >/dev/null || usage_error "python3 is needed"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
chmod 700 "$tmp"

# An Entra ID token of the deploying identity for Azure Databricks (its first-party
# application id, the same in every cloud).
if ! dbx="$("$az" account get-access-token --resource 2ff814a6-3304-4ab8-85cb-cd0e6f879c1d --query accessToken --output tsv 2>"$tmp/az.err")" || [[ -z "$dbx" ]]; then
  say "could not get an Entra ID token for Azure Databricks from the Azure CLI: $(head -c 300 "$tmp/az.err")"
  exit 1
fi
umask 077
printf 'header = "Authorization: Bearer %s"\n' "$dbx" >"$tmp/curl.conf"
unset dbx

payload="$(printf '{"access_control_list": [{"group_name": "%s", "permission_level": "CAN_USE"}]}' "$group")"

deadline=$((SECONDS + timeout_s))
attempt=0
while :; do
  attempt=$((attempt + 1))
  status="$(curl -q --config "$tmp/curl.conf" --silent --show-error --max-time 60 \
    --request PATCH --header "Content-Type: application/json" --data-binary "$payload" \
    --output "$tmp/body" --write-out '%{http_code}' "$url/api/2.0/permissions/authorization/tokens" 2>"$tmp/curl.err")"
  if [[ "$status" == "200" ]]; then
    # The answer is the whole ACL after the change: the group must hold CAN_USE in it.
    if python3 - "$tmp/body" "$group" <<'PY'; then
import json, sys
acl = json.load(open(sys.argv[1])).get("access_control_list") or []
ok = any(e.get("group_name") == sys.argv[2] and any(p.get("permission_level") == "CAN_USE" for p in e.get("all_permissions") or [])
         for e in acl)
sys.exit(0 if ok else 1)
PY
      say "group '$group' holds token CAN_USE in $url (one entry added; the other $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1])).get("access_control_list") or []) - 1)' "$tmp/body") entries unchanged)"
      exit 0
    fi
    say "HTTP 200, but the token permissions it returned do not give group '$group' CAN_USE"
    exit 1
  fi
  detail="$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("error_code",""), str(d.get("message",""))[:300])' "$tmp/body" 2>/dev/null || head -c 300 "$tmp/curl.err")"
  detail="$(printf '%s' "$detail" | tr -d '\000-\037')"
  case "$status" in
    429 | 5* | 000) ;; # throttled, or the workspace is busy
    401 | 403)
      say "HTTP $status: $detail"
      say "changing token permissions is for workspace admins: run terraform as an admin of that workspace (the databricks provider needs the same), or add the group '$group' with Can Use under Settings > Advanced > Personal Access Tokens > Permissions"
      exit 1
      ;;
    *)
      say "HTTP $status: $detail"
      case "$detail" in
        *"does not exist"*) say "a workspace that holds no token at all has no token permissions to change yet (terraform-provider-databricks#1122): create one short-lived token there as an admin, then apply again" ;;
      esac
      exit 1
      ;;
  esac
  if ((SECONDS + delay > deadline)); then
    say "attempt $attempt: HTTP $status: $detail; gave up after ${timeout_s}s"
    exit 3
  fi
  say "attempt $attempt: HTTP $status: $detail; retrying in ${delay}s"
  sleep "$delay"
  delay=$((delay * 2 > 60 ? 60 : delay * 2))
done
