#!/usr/bin/env bash
# Creates one short-lived personal access token of the deploying identity in a workspace
# that this configuration has just created, so that the workspace's tokens ACL can be set
# (infra/modules/pat-rotator/databricks.tf): Databricks answers "tokens tokens does not
# exist" to a tokens ACL while the workspace holds no token at all (the databricks
# provider's databricks_permissions docs, "Token usage"; terraform-provider-databricks
# issue #1122). Run by `terraform apply` once per created workspace.
#
#   POST $BOOTSTRAP_WORKSPACE_URL/api/2.0/token/create
#        {"lifetime_seconds": 86400, "comment": "pat-rotator bootstrap: ..."}
#   as the Azure CLI's identity (the workspace's creator, hence an admin), with the
#   Azure management token and workspace resource id headers, as the databricks
#   provider sends them.
#
# The token's value is discarded: this script never prints or stores the answer, only
# the token id. It expires after BOOTSTRAP_TOKEN_LIFETIME_SECONDS (default one day).
#
# Environment:
#   BOOTSTRAP_WORKSPACE_URL          https://adb-....azuredatabricks.net (http only for loopback)
#   BOOTSTRAP_WORKSPACE_RESOURCE_ID  /subscriptions/.../providers/Microsoft.Databricks/workspaces/...
#   BOOTSTRAP_MANAGEMENT_RESOURCE    audience of the management token (default
#                                    https://management.core.windows.net/; US Gov / China: their cloud's)
#   BOOTSTRAP_TOKEN_LIFETIME_SECONDS default 86400
#   BOOTSTRAP_TIMEOUT_SECONDS        retry a new workspace that does not answer yet this long (default 600)
#   BOOTSTRAP_INITIAL_DELAY_SECONDS  first pause between attempts, doubled up to 60 (default 5)
#   AZ                               the Azure CLI (default az)
#
# Exit status: 0 token created; 1 failed; 2 usage error (nothing was sent); 3 gave up.
set -uo pipefail

prog="bootstrap-token-acl"
say() { echo "$prog: $*" >&2; }
usage_error() {
  say "usage error: $*"
  exit 2
}

url="${BOOTSTRAP_WORKSPACE_URL:-}"
resource_id="${BOOTSTRAP_WORKSPACE_RESOURCE_ID:-}"
lifetime="${BOOTSTRAP_TOKEN_LIFETIME_SECONDS:-86400}"
timeout_s="${BOOTSTRAP_TIMEOUT_SECONDS:-600}"
delay="${BOOTSTRAP_INITIAL_DELAY_SECONDS:-5}"
az="${AZ:-az}"
mgmt_resource="${BOOTSTRAP_MANAGEMENT_RESOURCE:-https://management.core.windows.net/}"

[[ -n "$url" ]] || usage_error "BOOTSTRAP_WORKSPACE_URL is not set"
[[ "$url" =~ ^https:// || "$url" =~ ^http://(127\.[0-9.]+|localhost)(:[0-9]+)?/?$ ]] ||
  usage_error "BOOTSTRAP_WORKSPACE_URL '$url' must be an https:// URL (Entra ID tokens are sent to it)"
url="${url%/}"
[[ "$resource_id" =~ ^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Databricks/workspaces/[^/]+$ ]] ||
  usage_error "BOOTSTRAP_WORKSPACE_RESOURCE_ID '$resource_id' is not the ARM id of a Databricks workspace"
[[ "$lifetime" =~ ^[0-9]+$ && "$lifetime" -ge 300 && "$lifetime" -le 604800 ]] ||
  usage_error "BOOTSTRAP_TOKEN_LIFETIME_SECONDS must be an integer in 300..604800"
[[ "$timeout_s" =~ ^[0-9]+$ ]] || usage_error "BOOTSTRAP_TIMEOUT_SECONDS must be an integer"
[[ "$delay" =~ ^[0-9]+$ && "$delay" -ge 1 ]] || usage_error "BOOTSTRAP_INITIAL_DELAY_SECONDS must be a positive integer"
command -v "$az" >/dev/null || usage_error "the Azure CLI ($az) is needed (log in with az login)"
command -v curl >/dev/null || usage_error "curl is needed"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
chmod 700 "$tmp"

# Entra ID tokens of the deploying identity: one for Azure Databricks (its first-party
# application id, the same in every cloud) and one for Azure Resource Manager. They go
# into a curl config file (mode 600), never onto a command line.
access_token() { # $1 resource
  "$az" account get-access-token --resource "$1" --query accessToken --output tsv 2>"$tmp/az.err"
}
if ! dbx="$(access_token 2ff814a6-3304-4ab8-85cb-cd0e6f879c1d)" || [[ -z "$dbx" ]]; then
  say "could not get an Entra ID token for Azure Databricks from the Azure CLI: $(head -c 300 "$tmp/az.err")"
  exit 1
fi
if ! mgmt="$(access_token "$mgmt_resource")" || [[ -z "$mgmt" ]]; then
  say "could not get an Azure Resource Manager token from the Azure CLI: $(head -c 300 "$tmp/az.err")"
  exit 1
fi
umask 077
{
  printf 'header = "Authorization: Bearer %s"\n' "$dbx"
  printf 'header = "X-Databricks-Azure-SP-Management-Token: %s"\n' "$mgmt"
  printf 'header = "X-Databricks-Azure-Workspace-Resource-Id: %s"\n' "$resource_id"
} >"$tmp/curl.conf"
unset dbx mgmt

payload="$(printf '{"lifetime_seconds": %d, "comment": "pat-rotator bootstrap: a tokens ACL can only be set once the workspace holds a token (expires by itself)"}' "$lifetime")"

deadline=$((SECONDS + timeout_s))
attempt=0
while :; do
  attempt=$((attempt + 1))
  status="$(curl -q --config "$tmp/curl.conf" --silent --show-error --max-time 60 \
    --request POST --header "Content-Type: application/json" --data-binary "$payload" \
    --output "$tmp/body" --write-out '%{http_code}' "$url/api/2.0/token/create" 2>"$tmp/curl.err")"
  if [[ "$status" == "200" ]]; then
    # Only the id leaves this script; the body (with the token value) is deleted with $tmp.
    token_id="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["token_info"]["token_id"])' "$tmp/body" 2>/dev/null || echo "?")"
    rm -f "$tmp/body"
    say "created bootstrap token $token_id (lifetime ${lifetime}s; its value was discarded)"
    exit 0
  fi
  # What Databricks says, without the body's value fields (an error body holds none).
  detail="$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("error_code",""), d.get("message","")[:300])' "$tmp/body" 2>/dev/null || head -c 300 "$tmp/curl.err")"
  rm -f "$tmp/body"
  case "$status" in
    401 | 403 | 404 | 429 | 5* | 000) ;; # a new workspace, or role assignments, still settling
    *)
      say "attempt $attempt: HTTP $status: $detail"
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
