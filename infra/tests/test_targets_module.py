"""Runs the real Terraform validation rules of modules/targets offline: the module has
no provider, so `terraform init` / `test` / `plan` need no download. Skipped when no
terraform binary is installed (CI images may not have one)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import INFRA

TERRAFORM = shutil.which("terraform")
pytestmark = pytest.mark.skipif(TERRAFORM is None, reason="no terraform binary on PATH")

MODULE = INFRA / "modules" / "targets"


def tf(args, cwd: Path, check=True):
    env = dict(os.environ, TF_CLI_CONFIG_FILE="/dev/null", TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1", NO_COLOR="1")
    proc = subprocess.run([TERRAFORM, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, f"terraform {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def module_copy(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("targets") / "targets"
    shutil.copytree(MODULE, dest, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    tf(["init", "-backend=false", "-input=false", "-no-color"], dest)
    return dest


def test_terraform_test_suite_passes(module_copy):
    proc = tf(["test", "-no-color"], module_copy)
    assert "0 failed" in proc.stdout, proc.stdout


def test_access_module_terraform_test_suite_passes(tmp_path):
    """modules/access: who gets Contributor, admin, a service principal and a managed
    tokens ACL in which workspace (the least-privilege defaults)."""
    dest = tmp_path / "access"
    shutil.copytree(INFRA / "modules" / "access", dest, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    tf(["init", "-backend=false", "-input=false", "-no-color"], dest)
    proc = tf(["test", "-no-color"], dest)
    assert "0 failed" in proc.stdout and " passed" in proc.stdout, proc.stdout


def plan_root(tmp_path: Path, targets, workspaces=None) -> subprocess.CompletedProcess:
    workspaces = workspaces or {
        "analytics": {
            "workspace_url": "adb-1.1.azuredatabricks.net",
            "resource_id": "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Databricks/workspaces/analytics",
            "access_mode": "azure_contributor",
        }
    }
    root = tmp_path / "root"
    root.mkdir()
    (root / "main.tf").write_text(
        f'module "targets" {{\n  source = "{MODULE.as_posix()}"\n'
        f"  targets       = jsondecode({json.dumps(json.dumps(targets))})\n"
        f"  workspaces    = jsondecode({json.dumps(json.dumps(workspaces))})\n"
        '  key_vault_url = "https://kv.vault.azure.net"\n}\n'
        'output "pat_targets" { value = module.targets.pat_targets_json }\n'
    )
    tf(["init", "-backend=false", "-input=false", "-no-color"], root)
    return tf(["plan", "-input=false", "-no-color", "-refresh=false"], root, check=False)


def test_error_message_names_the_target_and_the_field(tmp_path):
    proc = plan_root(tmp_path, [
        {"name": "ok", "workspace": "analytics", "secret_name": "fine"},
        {"name": "bad", "workspace": "analytics", "secret_name": "my_secret"},
    ])
    assert proc.returncode != 0
    flat = " ".join(proc.stderr.split())
    assert 'targets[1].secret_name: "my_secret" is not a valid Key Vault secret name' in flat, proc.stderr


def test_renew_before_error_message(tmp_path):
    proc = plan_root(tmp_path, [{"name": "a", "workspace": "analytics", "secret_name": "s", "lifetime_days": 10, "renew_before_days": 10}])
    assert proc.returncode != 0
    flat = " ".join(proc.stderr.split())
    assert "targets[0].renew_before_days: 10 must be an integer with 0 < renew_before_days < lifetime_days (10)" in flat, proc.stderr


def test_valid_targets_plan_and_render_pat_targets(tmp_path):
    proc = plan_root(tmp_path, [{"name": "a", "workspace": "analytics", "secret_name": "s"}])
    assert proc.returncode == 0, proc.stderr
    assert "pat_targets" in proc.stdout


def find_binary() -> Path | None:
    candidates = [os.environ.get("PAT_ROTATOR_BIN", "")]
    candidates += [str(INFRA.parent / "target" / sub / "pat-rotator") for sub in (
        "x86_64-unknown-linux-gnu/release", "release", "debug")]
    if candidates[0] and Path(candidates[0]).is_file():
        return Path(candidates[0])
    # The most recently built one: a stale release build must not stand in for today's code.
    built = [Path(c) for c in candidates[1:] if Path(c).is_file() and os.access(c, os.X_OK)]
    return max(built, key=lambda p: p.stat().st_mtime, default=None)


def test_generated_pat_targets_are_accepted_by_pat_rotator(tmp_path):
    """Interop: the PAT_TARGETS Terraform generates passes the program's own
    `check-config` (contract §2). Uses whatever pat-rotator binary was built last."""
    binary = find_binary()
    if binary is None:
        pytest.skip("no built pat-rotator binary (cargo build / scripts/package.sh)")
    workspaces = {
        "new": {
            "workspace_url": "https://adb-1234567890123456.7.azuredatabricks.net",
            "resource_id": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Databricks/workspaces/dbw",
            "access_mode": "azure_contributor",
        },
        "ml": {
            "workspace_url": "adb-2.2.azuredatabricks.net",
            "resource_id": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Databricks/workspaces/ml",
            "access_mode": "workspace_service_principal",
        },
    }
    targets = [
        {"name": "analytics", "workspace": "new", "secret_name": "databricks-pat"},
        {"name": "ml-batch", "workspace": "ml", "secret_name": "ml-pat", "lifetime_days": 30,
         "renew_before_days": 10, "revoke_grace_hours": 0, "scopes": ["sql"]},
        {"name": "etl-app", "workspace": "new", "secret_name": "etl-pat", "autoscope": False,
         "client_id": "8F3C2A1E-1111-4A5B-9C7D-0E6F5A4B3C2D", "federated": True},
        {"name": "dbt-oauth", "workspace": "ml", "secret_name": "dbt-oauth", "kind": "sp_oauth_secret",
         "service_principal": "4D5E6F70-8192-4A3B-8C4D-5E6F70819203", "lifetime_days": 365, "renew_before_days": 60},
    ]
    root = tmp_path / "root"
    root.mkdir()
    (root / "main.tf").write_text(
        f'module "targets" {{\n  source = "{MODULE.as_posix()}"\n'
        f"  targets       = jsondecode({json.dumps(json.dumps(targets))})\n"
        f"  workspaces    = jsondecode({json.dumps(json.dumps(workspaces))})\n"
        '  key_vault_url = "https://patrot-kv-abc123.vault.azure.net/"\n}\n'
        'output "pat_targets" { value = module.targets.pat_targets_json }\n'
    )
    tf(["init", "-backend=false", "-input=false", "-no-color"], root)
    tf(["apply", "-auto-approve", "-input=false", "-no-color"], root)
    pat_targets = tf(["output", "-raw", "pat_targets"], root).stdout
    # As on the Function App: a user-assigned managed identity, the tenant for federation.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PAT_TARGETS": pat_targets,
           "IDENTITY_ENDPOINT": "http://127.0.0.1:9/msi/token", "IDENTITY_HEADER": "x",
           "AZURE_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
           "AZURE_TENANT_ID": "00000000-0000-0000-0000-000000000001"}
    proc = subprocess.run([str(binary), "check-config"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{binary} check-config rejected PAT_TARGETS {pat_targets}:\n{proc.stdout}\n{proc.stderr}"
    assert "analytics" in proc.stdout and "ml-batch" in proc.stdout
    assert "8f3c2a1e-1111-4a5b-9c7d-0e6f5a4b3c2d" in proc.stdout, proc.stdout
    # The §9 target as the program reads it: its kind and its principal, lower-cased.
    assert "sp_oauth_secret" in proc.stdout and "4d5e6f70-8192-4a3b-8c4d-5e6f70819203" in proc.stdout, proc.stdout
