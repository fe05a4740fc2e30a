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
