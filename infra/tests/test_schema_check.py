"""Self-tests of the schema checker (tfschema.py): it must fail on each kind of error
it claims to catch, and pass on a valid fixture. The fixtures are small .tf files in
schema_fixtures/ checked against the real azurerm 4.79.0 / azuread 3.7.0 schemas."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tfschema
from conftest import INFRA

FIXTURES = INFRA / "tests" / "schema_fixtures"


def check(name: str):
    report, providers = tfschema.run([FIXTURES / name])
    assert {"azurerm", "azuread"} <= {p.prefix for p in providers}, "the provider schemas were not found"
    return report


def only_error(report, *needles):
    assert len(report.errors) == 1, report.errors
    for needle in needles:
        assert needle in report.errors[0], report.errors[0]


def test_valid_fixture_passes_and_is_really_checked():
    report = check("valid")
    assert report.errors == []
    assert (report.resources, report.data_sources) == (3, 1)
    # azurerm_key_vault.this[0].id, ...network_acls[0].bypass, tenant_id, principal_id, ...
    assert report.references >= 5


def test_misspelt_argument_fails():
    only_error(check("misspelt_argument"), "unknown argument 'purge_protection_enable'", "did you mean 'purge_protection_enabled'")


def test_argument_absent_from_the_schema_fails():
    only_error(check("absent_argument"), "azurerm_role_assignment.this", "unknown argument 'expires_on'")


def test_missing_required_argument_fails():
    only_error(check("missing_required"), "required argument 'principal_id' is missing")


def test_reference_to_a_missing_attribute_fails():
    report = check("missing_attribute")
    assert len(report.errors) == 2, report.errors
    assert any("azurerm_key_vault.this.vault_url" in e and "did you mean 'vault_uri'" in e for e in report.errors)
    assert any("azurerm_user_assigned_identity.app.object_id" in e for e in report.errors)


@pytest.mark.parametrize(
    "needle",
    [
        "'default_hostname' is read-only (computed)",
        "identity: unknown argument 'principal_ix'",
        "required block 'site_config' is missing",
        "dynamic block 'email_reciever' is not a block",
        "webhook_receiver(dynamic): unknown argument 'uri'",
        "webhook_receiver(dynamic): required argument 'service_uri' is missing",
        "resource type 'azurerm_keyvault' does not exist in azurerm 4.79.0",
        "identity[0].principal_idd: 'principal_idd' is not an attribute of azurerm_function_app_flex_consumption.identity",
        "no resource azurerm_storage_account.missing is declared",
    ],
)
def test_nested_block_and_reference_errors(needle):
    report = check("nested_errors")
    assert any(needle in e for e in report.errors), report.errors


def test_nested_fixture_reports_exactly_its_errors():
    assert len(check("nested_errors").errors) == 9


def test_cli_exit_codes():
    script = INFRA / "tests" / "tfschema.py"
    bad = subprocess.run([sys.executable, str(script), str(FIXTURES / "missing_required")], capture_output=True, text=True)
    assert bad.returncode == 1 and "FAILED" in bad.stdout, bad.stdout + bad.stderr
    good = subprocess.run([sys.executable, str(script), str(FIXTURES / "valid")], capture_output=True, text=True)
    assert good.returncode == 0 and "0 errors" in good.stdout, good.stdout + good.stderr


def test_cli_fails_without_schemas(tmp_path):
    script = INFRA / "tests" / "tfschema.py"
    proc = subprocess.run([sys.executable, str(script), "--schema-dir", str(tmp_path), str(FIXTURES / "valid")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "no schema file for" in proc.stdout


# ---------------------------------------------------------------------------
# databricks: schema derived from the @cdktf/provider-databricks jsii assembly
# ---------------------------------------------------------------------------


def test_databricks_schema_is_loaded_and_derived_from_the_pinned_package():
    import json

    doc = json.loads((INFRA / "tests" / "schemas" / "databricks-1.99.0.json").read_text())
    assert doc["partial"] is True
    assert "@cdktf/provider-databricks@15.16.1" in doc["derived_from"] and "provider version 1.99.0" in doc["derived_from"]
    resources = doc["provider_schemas"]["registry.terraform.io/databricks/databricks"]["resource_schemas"]
    assert resources["databricks_group_member"]["block"]["attributes"]["member_id"].get("required") is True
    assert resources["databricks_permissions"]["block"]["block_types"]["access_control"]["min_items"] == 1


@pytest.mark.parametrize(
    "needle",
    [
        "databricks_group.g: unknown argument 'display_nam' (did you mean 'display_name'?)",
        "databricks_group.g: required argument 'display_name' is missing",
        "databricks_group_member.m: required argument 'group_id' is missing",
        "databricks_permissions.tokens.access_control: unknown argument 'principal'",
        "databricks_group.g.members: 'members' is not an attribute of databricks_group",
    ],
)
def test_databricks_errors_are_caught(needle):
    report = check("databricks_errors")
    assert any(needle in e for e in report.errors), report.errors


def test_a_databricks_type_missing_from_the_derived_schema_is_unchecked_and_fails_the_cli():
    report = check("databricks_errors")
    assert len(report.errors) == 5, report.errors
    assert any(u.startswith("databricks_permission.singular") for u in report.unchecked), report.unchecked
    script = INFRA / "tests" / "tfschema.py"
    proc = subprocess.run([sys.executable, str(script), str(FIXTURES / "databricks_errors")], capture_output=True, text=True)
    assert proc.returncode == 1 and "not schema-checked" in proc.stdout, proc.stdout


def test_the_real_configuration_has_no_unchecked_resource():
    report, _ = tfschema.run([INFRA], exclude=(FIXTURES,))
    assert report.errors == [], report.errors
    assert report.unchecked == [], report.unchecked
    assert report.resources >= 30 and report.references >= 50


def test_derivation_from_the_npm_package(tmp_path):
    """Regenerates the vendored file from the pinned npm package when its tarball is at
    hand (CDKTF_DATABRICKS_TGZ=path/to/cdktf-provider-databricks-15.16.1.tgz)."""
    import json
    import os

    tgz = os.environ.get("CDKTF_DATABRICKS_TGZ")
    if not tgz:
        pytest.skip("CDKTF_DATABRICKS_TGZ not set (npm pack @cdktf/provider-databricks@15.16.1)")
    import cdktf_schema

    vendored = json.loads((INFRA / "tests" / "schemas" / "databricks-1.99.0.json").read_text())
    types = sorted(vendored["provider_schemas"]["registry.terraform.io/databricks/databricks"]["resource_schemas"])
    out = tmp_path / "dbx.json"
    cdktf_schema.main([tgz, str(out), "--only", *types])
    assert json.loads(out.read_text()) == vendored
