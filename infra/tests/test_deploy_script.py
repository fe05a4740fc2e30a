"""infra/scripts/deploy-package.sh with a fake `az` on PATH (no Azure): the
config-zip call is bounded (a hanging az is stopped with a clear message), success
and retry paths, and the clean-up of key-based storage settings."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import INFRA

SCRIPT = INFRA / "scripts" / "deploy-package.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash and timeout")

FAKE_AZ = r"""#!/usr/bin/env bash
# fake az: logs every call, behaves per $FAKE_AZ_ZIP (ok | hang | fail-then-ok)
echo "$*" >>"$FAKE_AZ_LOG"
case "$1 $2" in
  "account show") [[ "$*" == *"--query id"* ]] && echo 00000000-0000-0000-0000-000000000000; exit 0 ;;
  "resource update") exit 0 ;;
esac
case "$*" in
  "functionapp config appsettings list"*) echo "AzureWebJobsStorage"; exit 0 ;;
  "functionapp config appsettings delete"*) exit 0 ;;
  "functionapp deployment source config-zip"*)
    case "$FAKE_AZ_ZIP" in
      ok) exit 0 ;;
      hang) exec sleep 300 ;;
      fail-then-ok)
        n=$(grep -c "config-zip" "$FAKE_AZ_LOG")
        [[ "$n" -ge 2 ]] && exit 0
        echo "ERROR: Forbidden (role not yet propagated)" >&2; exit 1 ;;
    esac ;;
esac
echo "fake az: unexpected call: $*" >&2
exit 2
"""


def run(tmp_path: Path, mode: str, **env_extra) -> tuple[subprocess.CompletedProcess, list[str], float]:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    az = bindir / "az"
    az.write_text(FAKE_AZ)
    az.chmod(0o755)
    package = tmp_path / "pat-rotator.zip"
    package.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    log = tmp_path / "az.log"
    log.write_text("")
    env = dict(
        os.environ,
        PATH=f"{bindir}:{os.environ.get('PATH', '')}",
        FAKE_AZ_LOG=str(log),
        FAKE_AZ_ZIP=mode,
        DEPLOY_RESOURCE_GROUP="rg",
        DEPLOY_FUNCTION_APP="patrot-func-abc123",
        DEPLOY_PACKAGE_PATH=str(package),
        **env_extra,
    )
    start = time.monotonic()
    proc = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    return proc, log.read_text().splitlines(), time.monotonic() - start


def test_a_hanging_config_zip_is_stopped_with_a_clear_message(tmp_path):
    proc, calls, elapsed = run(tmp_path, "hang", DEPLOY_ATTEMPT_TIMEOUT_SECONDS="2")
    assert proc.returncode == 4, proc.stderr
    assert elapsed < 30, f"the bound did not hold: {elapsed:.0f}s"
    assert "did not return within 2s and was stopped" in proc.stderr
    assert "az functionapp deployment list -g rg -n patrot-func-abc123" in proc.stderr
    assert sum("config-zip" in c for c in calls) == 1, "a hang is not retried"


def test_deploys_once_and_removes_key_based_storage_settings(tmp_path):
    proc, calls, _ = run(tmp_path, "ok")
    assert proc.returncode == 0, proc.stderr
    assert "deployed" in proc.stderr
    assert any(c.startswith("functionapp config appsettings delete") and "AzureWebJobsStorage" in c for c in calls)
    assert any("basicPublishingCredentialsPolicies/ftp" in c and "properties.allow=false" in c for c in calls)
    assert sum("config-zip" in c for c in calls) == 1


def test_retries_a_failed_deploy_within_the_overall_bound(tmp_path):
    # The retry pause is 10 s; keep the overall bound above it.
    proc, calls, _ = run(tmp_path, "fail-then-ok", DEPLOY_TIMEOUT_SECONDS="60")
    assert proc.returncode == 0, proc.stderr
    assert sum("config-zip" in c for c in calls) == 2
    assert "retrying in 10s" in proc.stderr


def test_rejects_a_bad_attempt_timeout(tmp_path):
    proc, calls, _ = run(tmp_path, "ok", DEPLOY_ATTEMPT_TIMEOUT_SECONDS="0")
    assert proc.returncode == 1
    assert "DEPLOY_ATTEMPT_TIMEOUT_SECONDS must be a positive whole number" in proc.stderr
    assert not any("config-zip" in c for c in calls)
