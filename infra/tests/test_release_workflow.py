"""The release workflow (.github/workflows/release.yml): it parses (actionlint and the
SchemaStore github-workflow schema, both installed by scripts/check-infra.sh into
.venv-actions), and it does what docs/RELEASE.md says: the tests, the build with
scripts/package.sh, the zip with its SHA-256 as release assets, an OIDC login and the
repository's deploy script."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO

WORKFLOW = REPO / ".github" / "workflows" / "release.yml"
DOC = yaml.safe_load(WORKFLOW.read_text())


def tool(name: str) -> str:
    path = REPO / ".venv-actions" / "bin" / name
    if path.is_file():
        return str(path)
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is missing: scripts/check-infra.sh installs it into .venv-actions")
    pytest.skip(f"{name} not installed (scripts/check-infra.sh installs it into .venv-actions)")


def lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([tool("actionlint"), "-no-color", str(path)], capture_output=True, text=True, timeout=120, cwd=REPO)


def test_actionlint_accepts_the_workflow():
    proc = lint(WORKFLOW)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_accepts_the_workflow():
    proc = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("broken", [
    ("needs: test\n", "needs: tests\n"),  # an unknown job
    ("${{ needs.package.outputs.sha256 }}", "${{ needs.package.outputs.sha265 }}"),  # an undefined output
    ("id-token: write", "id-token: writ"),  # a bad permission value
])
def test_actionlint_rejects_broken_workflows(tmp_path, broken):
    old, new = broken
    text = WORKFLOW.read_text()
    assert old in text
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    bad = tmp_path / ".github" / "workflows" / "release.yml"
    bad.write_text(text.replace(old, new, 1))
    assert lint(bad).returncode != 0


def steps(job: str) -> list[dict]:
    return DOC["jobs"][job]["steps"]


def test_tests_run_as_ci_does():
    runs = [s.get("run", "") for s in steps("test")]
    assert any(r.strip() == "scripts/test.sh" for r in runs), runs
    assert any("faketime" in r for r in runs), "the clock-jump test fails under CI=true without libfaketime"


def test_the_build_step_is_package_sh_with_the_commit_time():
    build = next(s for s in steps("package") if "scripts/package.sh" in s.get("run", ""))
    assert "SOURCE_DATE_EPOCH" in build["run"] and "git log -1 --format=%ct" in build["run"]
    assert not any("cargo build" in s.get("run", "") or "cargo zigbuild" in s.get("run", "") for s in steps("package"))
    assert any("sha256sum pat-rotator.zip > pat-rotator.zip.sha256" in s.get("run", "") for s in steps("package"))


def test_release_assets_are_the_zip_and_its_checksum():
    release = next(s for s in steps("publish") if "gh release create" in s.get("run", ""))
    assert "dist/pat-rotator.zip dist/pat-rotator.zip.sha256" in release["run"]
    assert DOC["jobs"]["publish"]["permissions"] == {"contents": "write"}
    assert DOC["permissions"] == {"contents": "read"}, "least privilege by default"


def test_deploy_uses_oidc_and_the_deploy_script():
    job = DOC["jobs"]["deploy"]
    assert job["permissions"]["id-token"] == "write"
    assert job["environment"] == "production"
    login = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("azure/login@"))
    assert set(login["with"]) == {"client-id", "tenant-id", "subscription-id"}, "OIDC: no client secret"
    deploy = next(s for s in job["steps"] if "deploy-package.sh" in s.get("run", ""))
    assert deploy["env"]["DEPLOY_PACKAGE_PATH"] == "dist/pat-rotator.zip"
    checks = [s for s in job["steps"] if "sha256sum -c" in s.get("run", "")]
    assert checks, "the deploy job checks the artifact's SHA-256 first"
    assert "secrets." not in WORKFLOW.read_text(), "no stored secret is used"


def test_the_deployment_is_checked_after_it_lands():
    """contract section 3: GET /api/Status answers 200 with one object per target; the job
    fails unless every target is healthy (infra/tests/test_check_status.py runs the step)."""
    job = DOC["jobs"]["deploy"]
    runs = [s.get("run", "") for s in job["steps"]]
    deploy = next(i for i, r in enumerate(runs) if "deploy-package.sh" in r)
    check = next(i for i, r in enumerate(runs) if "check-status.sh" in r)
    assert check == len(runs) - 1 and check > deploy, "the check is the deploy job's last step"
    run = runs[check]
    assert run.index("::add-mask::$STATUS_FUNCTION_KEY") < run.index("check-status.sh"), "masked before use"
    assert "az functionapp keys list" in run and "functionKeys.default" in run
    assert 'STATUS_URL="https://$host/api/Status"' in run
    assert "job.continue-on-error" not in str(job) and not job["steps"][check].get("continue-on-error"), "a failed check fails the job"
    assert "infra/scripts" in str(job["steps"][0]["with"]["sparse-checkout"]), "the checkout holds the script"
