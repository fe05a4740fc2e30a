"""infra/scripts/bootstrap-token-acl.sh against a fake `az` and a local workspace: it creates
one short-lived token as the deploying identity (so a new workspace's tokens ACL can be
set), sends the management headers the databricks provider sends, retries while a new
workspace settles, and prints neither the token value nor the Entra tokens."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import INFRA

SCRIPT = INFRA / "scripts" / "bootstrap-token-acl.sh"
RESOURCE_ID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Databricks/workspaces/dbw"
TOKEN_VALUE = "dapi0123456789abcdef0123456789abcdef"

FAKE_AZ = r"""#!/usr/bin/env bash
echo "$*" >>"$FAKE_AZ_LOG"
case "$*" in
  *"--resource 2ff814a6-3304-4ab8-85cb-cd0e6f879c1d"*) echo "entra-databricks-token"; exit 0 ;;
  *"--resource https://management."*) echo "entra-management-token"; exit 0 ;;
esac
echo "fake az: unexpected call: $*" >&2
exit 2
"""


class Workspace(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        self.server.calls.append({"path": self.path, "headers": dict(self.headers), "body": body})
        status = self.server.statuses.pop(0) if self.server.statuses else 200
        if status == 200:
            answer = {"token_value": TOKEN_VALUE, "token_info": {"token_id": "5e6f7a8b9c0d", "comment": json.loads(body)["comment"]}}
        else:
            answer = {"error_code": "TEMPORARILY_UNAVAILABLE" if status >= 500 else "INVALID_PARAMETER_VALUE", "message": "nope"}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def run(tmp_path: Path, statuses=(), **env_extra):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Workspace)
    server.calls, server.statuses = [], list(statuses)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "az").write_text(FAKE_AZ)
    (bindir / "az").chmod(0o755)
    log = tmp_path / "az.log"
    log.write_text("")
    env = dict(os.environ, PATH=f"{bindir}:{os.environ.get('PATH', '')}", FAKE_AZ_LOG=str(log),
               BOOTSTRAP_WORKSPACE_URL=f"http://127.0.0.1:{server.server_address[1]}",
               BOOTSTRAP_WORKSPACE_RESOURCE_ID=RESOURCE_ID, BOOTSTRAP_TIMEOUT_SECONDS="20", BOOTSTRAP_INITIAL_DELAY_SECONDS="1")
    env.update(env_extra)
    try:
        proc = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    finally:
        server.shutdown()
    return proc, server.calls, log.read_text()


def test_creates_one_short_lived_token_with_the_management_headers(tmp_path):
    proc, calls, az_log = run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    (call,) = calls
    assert call["path"] == "/api/2.0/token/create"
    assert call["headers"]["Authorization"] == "Bearer entra-databricks-token"
    assert call["headers"]["X-Databricks-Azure-SP-Management-Token"] == "entra-management-token"
    assert call["headers"]["X-Databricks-Azure-Workspace-Resource-Id"] == RESOURCE_ID
    body = json.loads(call["body"])
    assert body["lifetime_seconds"] == 86400 and body["comment"].startswith("pat-rotator bootstrap")
    assert "created bootstrap token 5e6f7a8b9c0d" in proc.stderr
    out = proc.stdout + proc.stderr
    for secret in (TOKEN_VALUE, "entra-databricks-token", "entra-management-token"):
        assert secret not in out, f"{secret} printed"
    assert "--resource https://management.core.windows.net/" in az_log


def test_management_audience_follows_the_cloud(tmp_path):
    proc, calls, az_log = run(tmp_path, BOOTSTRAP_MANAGEMENT_RESOURCE="https://management.core.usgovcloudapi.net/")
    assert proc.returncode == 0, proc.stderr
    assert "--resource https://management.core.usgovcloudapi.net/" in az_log


def test_retries_while_a_new_workspace_settles(tmp_path):
    proc, calls, _ = run(tmp_path, statuses=[503, 403], BOOTSTRAP_TIMEOUT_SECONDS="60")
    assert proc.returncode == 0, proc.stderr
    assert len(calls) == 3
    assert "retrying in" in proc.stderr


def test_a_refusal_that_retrying_cannot_fix_fails_at_once(tmp_path):
    proc, calls, _ = run(tmp_path, statuses=[400])
    assert proc.returncode == 1
    assert len(calls) == 1 and "HTTP 400" in proc.stderr


@pytest.mark.parametrize("url", ["http://adb-1.1.azuredatabricks.net", "ftp://x", ""])
def test_refuses_a_url_an_entra_token_must_not_go_to(tmp_path, url):
    proc, calls, az_log = run(tmp_path, BOOTSTRAP_WORKSPACE_URL=url)
    assert proc.returncode == 2
    assert not calls and az_log == "", "nothing is asked or sent"


def test_refuses_a_resource_id_that_is_no_workspace(tmp_path):
    proc, calls, _ = run(tmp_path, BOOTSTRAP_WORKSPACE_RESOURCE_ID="/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/s")
    assert proc.returncode == 2 and not calls
