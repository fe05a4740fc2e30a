"""infra/scripts/grant-token-use.sh against a fake `az` and a local workspace that keeps a
tokens ACL and applies PATCH (add or update the listed entries) and PUT (replace) as the
Permissions API does: the group gets CAN_USE, every other entry stays, and neither the
Entra token nor anything else secret is printed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import INFRA

SCRIPT = INFRA / "scripts" / "grant-token-use.sh"
ENTRA = "entra-databricks-token-0123456789"

pytestmark = pytest.mark.skipif(shutil.which("curl") is None or shutil.which("bash") is None, reason="needs bash and curl")

FAKE_AZ = r"""#!/usr/bin/env bash
echo "$*" >>"$FAKE_AZ_LOG"
case "$*" in
  *"--resource 2ff814a6-3304-4ab8-85cb-cd0e6f879c1d"*) echo "__ENTRA__"; exit 0 ;;
esac
echo "fake az: unexpected call: $*" >&2
exit 2
""".replace("__ENTRA__", ENTRA)

# A workspace's tokens ACL before the grant: admins (CAN_MANAGE, always), a user and a
# service principal that must keep their token access.
INITIAL_ACL = [
    {"group_name": "admins", "permission_level": "CAN_MANAGE"},
    {"user_name": "analyst@example.com", "permission_level": "CAN_USE"},
    {"service_principal_name": "9a1f0000-0000-4000-8000-000000000001", "permission_level": "CAN_USE"},
]


def principal(entry: dict) -> tuple[str, str]:
    for key in ("group_name", "user_name", "service_principal_name"):
        if key in entry:
            return key, entry[key]
    raise AssertionError(entry)


class Workspace(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _answer(self, status: int, doc: dict):
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _acl_doc(self) -> dict:
        return {"object_id": "authorization/tokens", "object_type": "tokens", "access_control_list": [
            {**dict([principal(e)]), "all_permissions": [{"permission_level": e["permission_level"], "inherited": False}]}
            for e in self.server.acl
        ]}

    def _change(self, replace: bool):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        self.server.calls.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body})
        status = self.server.statuses.pop(0) if self.server.statuses else 200
        if status != 200:
            code, message = self.server.errors.get(status, ("TEMPORARILY_UNAVAILABLE" if status >= 500 else "PERMISSION_DENIED", "nope"))
            return self._answer(status, {"error_code": code, "message": message})
        if self.path != "/api/2.0/permissions/authorization/tokens":
            return self._answer(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": self.path})
        entries = json.loads(body)["access_control_list"]
        if replace:
            self.server.acl = [e for e in self.server.acl if e.get("group_name") == "admins"] + entries
        else:
            by = {principal(e): e for e in self.server.acl}
            for e in entries:
                by[principal(e)] = e
            self.server.acl = list(by.values())
        if self.server.drop_group_from_answer:
            doc = self._acl_doc()
            doc["access_control_list"] = [e for e in doc["access_control_list"] if e.get("group_name") != "pat-rotator"]
            return self._answer(200, doc)
        return self._answer(200, self._acl_doc())

    def do_PATCH(self):
        self._change(replace=False)

    def do_PUT(self):
        self._change(replace=True)


def run(tmp_path: Path, statuses=(), errors=None, drop_group_from_answer=False, **env_extra):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Workspace)
    server.calls, server.statuses, server.errors = [], list(statuses), errors or {}
    server.acl = [dict(e) for e in INITIAL_ACL]
    server.drop_group_from_answer = drop_group_from_answer
    threading.Thread(target=server.serve_forever, daemon=True).start()
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "az").write_text(FAKE_AZ)
    (bindir / "az").chmod(0o755)
    log = tmp_path / "az.log"
    log.write_text("")
    env = dict(os.environ, PATH=f"{bindir}:{os.environ.get('PATH', '')}", FAKE_AZ_LOG=str(log),
               GRANT_WORKSPACE_URL=f"http://127.0.0.1:{server.server_address[1]}/",
               GRANT_TIMEOUT_SECONDS="30", GRANT_INITIAL_DELAY_SECONDS="1")
    env.update(env_extra)
    try:
        proc = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    finally:
        server.shutdown()
    return proc, server, log.read_text()


def test_adds_the_group_and_keeps_every_other_entry(tmp_path):
    proc, server, az_log = run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    (call,) = server.calls
    assert call["method"] == "PATCH", "PUT would replace the ACL and revoke everyone else's tokens"
    assert call["path"] == "/api/2.0/permissions/authorization/tokens"
    assert call["headers"]["Authorization"] == f"Bearer {ENTRA}"
    assert not any(h.lower().startswith("x-databricks-azure") for h in call["headers"]), "no Azure management headers: no Azure role is needed"
    assert json.loads(call["body"]) == {"access_control_list": [{"group_name": "pat-rotator", "permission_level": "CAN_USE"}]}
    # what the workspace holds afterwards: everyone as before, plus the group
    assert server.acl == INITIAL_ACL + [{"group_name": "pat-rotator", "permission_level": "CAN_USE"}]
    assert "group 'pat-rotator' holds token CAN_USE" in proc.stderr and "other 3 entries unchanged" in proc.stderr
    assert ENTRA not in proc.stdout + proc.stderr
    assert "--resource 2ff814a6-3304-4ab8-85cb-cd0e6f879c1d" in az_log
    assert ENTRA not in az_log


def test_running_twice_changes_nothing_more(tmp_path):
    proc, server, _ = run(tmp_path)
    assert proc.returncode == 0
    first = [dict(e) for e in server.acl]
    proc, server2, _ = run(tmp_path)
    assert proc.returncode == 0
    assert server2.acl == first


def test_retries_throttling_and_server_errors(tmp_path):
    proc, server, _ = run(tmp_path, statuses=[429, 503])
    assert proc.returncode == 0, proc.stderr
    assert len(server.calls) == 3 and "retrying in" in proc.stderr


def test_a_non_admin_fails_at_once_and_is_told_why(tmp_path):
    proc, server, _ = run(tmp_path, statuses=[403])
    assert proc.returncode == 1
    assert len(server.calls) == 1
    assert "workspace admins" in proc.stderr
    assert server.acl == INITIAL_ACL


def test_a_workspace_without_tokens_is_explained(tmp_path):
    proc, server, _ = run(tmp_path, statuses=[404], errors={404: ("RESOURCE_DOES_NOT_EXIST", "tokens tokens does not exist")})
    assert proc.returncode == 1
    assert "holds no token" in proc.stderr


def test_an_answer_without_the_group_is_a_failure(tmp_path):
    proc, server, _ = run(tmp_path, drop_group_from_answer=True)
    assert proc.returncode == 1
    assert "do not give group 'pat-rotator' CAN_USE" in proc.stderr


def test_gives_up_within_its_bound(tmp_path):
    proc, server, _ = run(tmp_path, statuses=[503] * 50, GRANT_TIMEOUT_SECONDS="2")
    assert proc.returncode == 3, proc.stderr
    assert "gave up" in proc.stderr


@pytest.mark.parametrize("env", [
    {"GRANT_WORKSPACE_URL": "http://adb-1.1.azuredatabricks.net"},  # plain http to a real host
    {"GRANT_WORKSPACE_URL": "https://adb-1.1.azuredatabricks.net/?x=1"},
    {"GRANT_WORKSPACE_URL": ""},
    {"GRANT_GROUP_NAME": 'pat-rotator", "permission_level": "CAN_MANAGE'},  # JSON injection
])
def test_usage_errors_send_nothing(tmp_path, env):
    proc, server, az_log = run(tmp_path, **env)
    assert proc.returncode == 2, proc.stderr
    assert not server.calls and az_log == "", "nothing is asked or sent"
