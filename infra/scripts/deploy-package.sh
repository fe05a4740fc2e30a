#!/usr/bin/env bash
# Deploys the pat-rotator package (scripts/package.sh -> dist/pat-rotator.zip) to the
# Flex Consumption Function App created by infra/, with the Azure CLI. Run by
# `terraform apply` (infra/deploy.tf) or by hand / a pipeline:
#
#   infra/scripts/deploy-package.sh -g <resource-group> -n <function-app> [-s <subscription>] [--src dist/pat-rotator.zip]
#
# (or the same values in DEPLOY_RESOURCE_GROUP, DEPLOY_FUNCTION_APP,
# DEPLOY_SUBSCRIPTION_ID, DEPLOY_PACKAGE_PATH). DEPLOY_TIMEOUT_SECONDS bounds the
# retries (default 900); DEPLOY_ATTEMPT_TIMEOUT_SECONDS bounds one
# `az functionapp deployment source config-zip` call (default 600): on Flex Consumption
# azure-cli's post-deployment status loop can poll forever (its counter never advances),
# so a call that has not returned by then is stopped and the script fails with a
# message saying so (exit 4).
#
# Steps:
#  1. Remove AzureWebJobsStorage / DEPLOYMENT_STORAGE_CONNECTION_STRING if present.
#     The app uses identity-based host storage (AzureWebJobsStorage__accountName +
#     __credential); azurerm 4.x nevertheless writes a key-less connection string into
#     these settings on every create/update of a Flex app
#     (hashicorp/terraform-provider-azurerm#29149, #29693), and a connection string
#     takes precedence over the identity-based settings.
#  2. Turn off FTP basic-auth publishing (azurerm's Flex resource has no FTP setting;
#     SCM basic auth is already off through Terraform).
#  3. One deploy of the zip: `az functionapp deployment source config-zip`, which uses
#     the Flex Consumption publish endpoint. Retried while the app's identity is not
#     yet allowed to write its deployment container (role propagation).
#
# Needs: az (logged in: `az login`, or a pipeline's service connection) with rights to
# change the app (e.g. Website Contributor on it). Prints no secret.
set -euo pipefail

prog="deploy-package"
die() { echo "$prog: error: $*" >&2; exit 1; }
log() { echo "$prog: $*" >&2; }

rg="${DEPLOY_RESOURCE_GROUP:-}"
app="${DEPLOY_FUNCTION_APP:-}"
sub="${DEPLOY_SUBSCRIPTION_ID:-}"
src="${DEPLOY_PACKAGE_PATH:-}"
timeout_s="${DEPLOY_TIMEOUT_SECONDS:-900}"
attempt_timeout_s="${DEPLOY_ATTEMPT_TIMEOUT_SECONDS:-600}"

while [[ $# -gt 0 ]]; do
  case "$1" in
    -g | --resource-group) rg="${2:?}"; shift 2 ;;
    -n | --name) app="${2:?}"; shift 2 ;;
    -s | --subscription) sub="${2:?}"; shift 2 ;;
    --src) src="${2:?}"; shift 2 ;;
    -h | --help) sed -n '2,30p' "$0"; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
done

if [[ -z "$src" ]]; then
  src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/dist/pat-rotator.zip"
fi
[[ -n "$rg" ]] || die "resource group not set (-g or DEPLOY_RESOURCE_GROUP)"
[[ -n "$app" ]] || die "function app not set (-n or DEPLOY_FUNCTION_APP)"
[[ -f "$src" ]] || die "package $src not found: run scripts/package.sh"
[[ "$timeout_s" =~ ^[0-9]+$ ]] || die "DEPLOY_TIMEOUT_SECONDS must be a whole number"
[[ "$attempt_timeout_s" =~ ^[1-9][0-9]*$ ]] || die "DEPLOY_ATTEMPT_TIMEOUT_SECONDS must be a positive whole number"
command -v timeout >/dev/null || die "timeout (GNU coreutils) is required to bound the deployment call"
command -v az >/dev/null || die "the Azure CLI (az) is required; or deploy $src with your pipeline's Azure Functions deploy task (Flex Consumption)"
az account show --output none 2>/dev/null || die "the Azure CLI is not logged in: run 'az login' (and 'az account set -s <subscription>')"

sub_args=()
[[ -n "$sub" ]] && sub_args=(--subscription "$sub")
[[ -n "$sub" ]] || sub="$(az account show --query id --output tsv)"

# 1. identity-based host storage only
stale="$(az functionapp config appsettings list --resource-group "$rg" --name "$app" "${sub_args[@]}" \
  --query "[?name=='AzureWebJobsStorage' || name=='DEPLOYMENT_STORAGE_CONNECTION_STRING'].name" --output tsv)"
if [[ -n "$stale" ]]; then
  # shellcheck disable=SC2086 # one setting name per word
  log "removing key-based storage settings: $(echo $stale)"
  # shellcheck disable=SC2086
  az functionapp config appsettings delete --resource-group "$rg" --name "$app" "${sub_args[@]}" \
    --setting-names $stale --output none
fi

# 2. no FTP basic-auth publishing
ftp_policy="/subscriptions/$sub/resourceGroups/$rg/providers/Microsoft.Web/sites/$app/basicPublishingCredentialsPolicies/ftp"
if ! az resource update --ids "$ftp_policy" --set properties.allow=false --output none 2>/dev/null; then
  log "warning: could not set $ftp_policy to allow=false (check it in the portal: Configuration > General settings)"
fi

# 3. one deploy, with bounded retries
deadline=$(($(date +%s) + timeout_s))
delay=10
attempt=1
while :; do
  log "deploying $(basename "$src") ($(wc -c <"$src" | tr -d ' ') bytes) to $app, attempt $attempt (at most ${attempt_timeout_s}s)"
  rc=0
  timeout --kill-after=10 "$attempt_timeout_s" \
    az functionapp deployment source config-zip --resource-group "$rg" --name "$app" "${sub_args[@]}" \
    --src "$src" --output none || rc=$?
  if [[ "$rc" -eq 0 ]]; then
    log "deployed"
    exit 0
  fi
  if [[ "$rc" -eq 124 || "$rc" -eq 137 ]]; then
    echo "$prog: error: 'az functionapp deployment source config-zip' did not return within ${attempt_timeout_s}s and was stopped." >&2
    echo "$prog: on Flex Consumption, azure-cli's post-deployment status polling can loop forever even after the deployment finished." >&2
    echo "$prog: check the result: az functionapp deployment list -g $rg -n $app (or the portal's Deployment Center), then re-run terraform apply;" >&2
    echo "$prog: raise DEPLOY_ATTEMPT_TIMEOUT_SECONDS if large packages need longer, or update the Azure CLI." >&2
    exit 4
  fi
  now=$(date +%s)
  if [[ $((now + delay)) -ge "$deadline" ]]; then
    die "deployment still failing after ${timeout_s}s; the app's identity may not yet have Storage Blob Data Owner on its storage account (propagation), see the az error above"
  fi
  log "deployment failed; retrying in ${delay}s (role assignments take minutes to propagate)"
  sleep "$delay"
  delay=$((delay * 2))
  [[ "$delay" -gt 60 ]] && delay=60
  attempt=$((attempt + 1))
done
