#!/usr/bin/env bash
# The approach pat-rotator replaces, as a script: get Entra ID tokens, create a PAT with the
# Token API (management-header mode), write it to Key Vault. Used by the benchmark
# (bench/src/main.rs) against the local emulators.
#
# The original runs `az login --identity` and then `az account get-access-token --resource R`
# three times (Databricks, management, vault) -- four az processes. The Azure CLI is not
# installed here (a 733 MB install; ~0.7 s per `az` process start according to
# shared/reference/offline-tooling.md), so each get-access-token is stood in for by one `curl`
# to the managed-identity endpoint (what az does under `--identity`, minus Python's start-up),
# and the login, which has no HTTP equivalent, is skipped. The benchmark reports the measured
# time of this script and, separately, an estimate with 4 x 0.7 s added for the az calls.
#
# Like the typical original it does no list, no verification, no revocation and no retries,
# and it stores the value with no tags or expiry beyond what the PUT below sets.
#
# Environment: IDENTITY_ENDPOINT, IDENTITY_HEADER, SSL_CERT_FILE (CA of the HTTPS fakes),
# DATABRICKS_HOST, DATABRICKS_WORKSPACE_RESOURCE_ID, KEY_VAULT_URL, PAT_SECRET_NAME,
# PAT_LIFETIME_SECONDS (default 90 days).
set -euo pipefail

: "${IDENTITY_ENDPOINT:?}" "${IDENTITY_HEADER:?}" "${DATABRICKS_HOST:?}" "${DATABRICKS_WORKSPACE_RESOURCE_ID:?}"
: "${KEY_VAULT_URL:?}" "${PAT_SECRET_NAME:?}"
LIFETIME="${PAT_LIFETIME_SECONDS:-7776000}"
CURL=(curl --silent --show-error --fail --noproxy '*')
[[ -n "${SSL_CERT_FILE:-}" ]] && CURL+=(--cacert "$SSL_CERT_FILE")

# Stand-in for `az account get-access-token --resource "$1" --query accessToken -o tsv`.
token() {
  local json
  json=$("${CURL[@]}" -G "$IDENTITY_ENDPOINT" \
    --data-urlencode "api-version=2019-08-01" --data-urlencode "resource=$1" \
    -H "X-IDENTITY-HEADER: $IDENTITY_HEADER")
  [[ $json =~ \"access_token\":\"([^\"]+)\" ]] || { echo "no access_token for $1" >&2; return 1; }
  printf '%s' "${BASH_REMATCH[1]}"
}

DBX_TOKEN=$(token 2ff814a6-3304-4ab8-85cb-cd0e6f879c1d)
MGMT_TOKEN=$(token https://management.core.windows.net/)
KV_TOKEN=$(token https://vault.azure.net)

created=$("${CURL[@]}" -X POST "${DATABRICKS_HOST%/}/api/2.0/token/create" \
  -H "Authorization: Bearer $DBX_TOKEN" \
  -H "X-Databricks-Azure-SP-Management-Token: $MGMT_TOKEN" \
  -H "X-Databricks-Azure-Workspace-Resource-Id: $DATABRICKS_WORKSPACE_RESOURCE_ID" \
  -H "Content-Type: application/json" \
  -d "{\"comment\":\"original script\",\"lifetime_seconds\":$LIFETIME}")
[[ $created =~ \"token_value\":\"([^\"]+)\" ]] || { echo "token create: no token_value" >&2; exit 1; }
PAT=${BASH_REMATCH[1]}

"${CURL[@]}" -o /dev/null -X PUT "${KEY_VAULT_URL%/}/secrets/$PAT_SECRET_NAME?api-version=7.4" \
  -H "Authorization: Bearer $KV_TOKEN" \
  -H "Content-Type: application/json" \
  -d "{\"value\":\"$PAT\",\"contentType\":\"databricks-pat\"}"
echo "stored a new PAT in $PAT_SECRET_NAME"
