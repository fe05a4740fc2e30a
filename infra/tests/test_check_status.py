"""The release's deployment check: infra/scripts/check-status.sh against a local Status function
(contract section 3: 200 with one object per target; 500 config_invalid), and the workflow
step that calls it (.github/workflows/release.yml, job deploy), run as written with a fake
`az` against a local HTTPS server."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from conftest import INFRA, REPO

SCRIPT = INFRA / "scripts" / "check-status.sh"
WORKFLOW = REPO / ".github" / "workflows" / "release.yml"
KEY = "St4tus-Key_ForTests/abc+def=="

pytestmark = pytest.mark.skipif(shutil.which("curl") is None or shutil.which("bash") is None, reason="needs bash and curl")


def status_row(target: str, healthy: bool = True, attention=(), error=None, **extra) -> dict:
    """One object of the Status answer: the `status --json` fields (contract section 1) with
    section 3's changes (no secret_id, rotated_by self/other/null, fixed error messages)."""
    row = {
        "target": target, "kind": "pat", "secret_version": "0123456789abcdef0123456789abcdef", "token_id": "5715498424f1",
        "expires_at": "2027-03-07T03:00:00Z", "days_left": 89, "token_exists": True, "rotated_at": "2026-12-07T03:00:00Z",
        "next_rotation_at": "2027-02-05T03:00:00Z", "rotated_by": "self", "last_used_day": None, "healthy": healthy,
        "attention": list(attention), "details": {}, "error": error,
    }
    row.update(extra)
    return row


HEALTHY = [status_row("analytics"), status_row("finance")]
UNHEALTHY = [
    status_row("analytics"),
    status_row("finance", healthy=False, attention=["secret_unreadable"], error={"code": "keyvault_forbidden", "message": "The service identity may not read or write the secret."}),
    status_row("ml", healthy=False, attention=["expires_soon", "over_cap"], details={"over_cap": ["a", "b"]}),
]
CONFIG_INVALID = {"error": {"code": "config_invalid", "message": "The configuration of the service is invalid; see its log."}}


class Scripted:
    """Answers GET requests from a list of (status, body); the last one repeats."""

    def __init__(self, responses, tls: ssl.SSLContext | None = None):
        self.responses = list(responses)
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
                status, body = outer.responses[min(len(outer.requests), len(outer.responses)) - 1]
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]

    def close(self):
        self.server.shutdown()


def run(responses, **env_extra):
    server = Scripted(responses)
    env = dict(os.environ, STATUS_URL=f"http://127.0.0.1:{server.port}/api/Status", STATUS_FUNCTION_KEY=KEY,
               STATUS_TIMEOUT_SECONDS="20", STATUS_INITIAL_DELAY_SECONDS="1")
    env.update(env_extra)
    try:
        proc = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    finally:
        server.close()
    assert KEY not in proc.stdout + proc.stderr, "the function key was printed"
    return proc, server.requests


def test_healthy_deployment_passes():
    proc, requests = run([(200, HEALTHY)])
    assert proc.returncode == 0, proc.stderr
    (req,) = requests
    assert req["path"] == "/api/Status"
    assert req["headers"]["x-functions-key"] == KEY, "the key goes in the header"
    assert "code=" not in req["path"]
    assert "all 2 targets healthy" in proc.stdout
    assert "analytics: healthy" in proc.stdout and "finance: healthy" in proc.stdout


def test_unhealthy_targets_fail_with_their_reasons():
    proc, _ = run([(200, UNHEALTHY)])
    assert proc.returncode == 1
    assert "finance: NEEDS ATTENTION: secret_unreadable; error keyvault_forbidden: The service identity may not read or write the secret." in proc.stderr
    assert "ml: NEEDS ATTENTION: expires_soon, over_cap" in proc.stderr
    assert "analytics: NEEDS ATTENTION" not in proc.stderr
    assert "2 of 3 targets need attention" in proc.stderr


def test_config_error_500_fails_at_once():
    proc, requests = run([(500, CONFIG_INVALID)])
    assert proc.returncode == 1
    assert len(requests) == 1, "a 500 is no warm-up: not retried"
    assert "HTTP 500: config_invalid The configuration of the service is invalid" in proc.stderr


def test_waits_for_a_host_that_is_still_loading():
    proc, requests = run([(404, b""), (401, b""), (503, b""), (200, HEALTHY)])
    assert proc.returncode == 0, proc.stderr
    assert len(requests) == 4
    assert "Status not (yet) loaded" in proc.stderr and "retrying in" in proc.stderr


def test_gives_up_within_its_bound():
    proc, _ = run([(503, b"")], STATUS_TIMEOUT_SECONDS="2")
    assert proc.returncode == 3
    assert "gave up" in proc.stderr


@pytest.mark.parametrize("body", [b"not json", {"target": "a", "healthy": True}, [{"target": "a"}], [{"target": "a", "healthy": "yes"}], []])
def test_an_answer_that_is_not_the_status_answer_fails(body):
    proc, _ = run([(200, body)])
    assert proc.returncode == 1, proc.stdout


def test_a_key_echoed_back_is_not_printed():
    rows = [status_row("finance", healthy=False, attention=["secret_unreadable"], error={"code": "keyvault_error", "message": f"echo {KEY}"})]
    proc, _ = run([(200, rows)])  # run() asserts the key is in neither stream
    assert proc.returncode == 1


@pytest.mark.parametrize("env", [
    {"STATUS_URL": "http://pat-func.azurewebsites.net/api/Status"},
    {"STATUS_URL": "https://pat-func.azurewebsites.net/api/Status?code=abc"},
    {"STATUS_URL": ""},
    {"STATUS_FUNCTION_KEY": ""},
    {"STATUS_FUNCTION_KEY": 'a"b'},
])
def test_usage_errors_send_nothing(env):
    proc, requests = run([(200, HEALTHY)], **env)
    assert proc.returncode == 2
    assert not requests
    assert "code=abc" not in proc.stderr


# ---------------------------------------------------------------------------
# The workflow step as written, with a fake az, against a local HTTPS "app"
# ---------------------------------------------------------------------------

FAKE_AZ = r"""#!/usr/bin/env bash
echo "$*" >>"$FAKE_AZ_LOG"
case "$*" in
  "functionapp show --resource-group rg-pat --name patrot-func-abc123 --query defaultHostName --output tsv") echo "$FAKE_HOST" ;;
  "functionapp keys list --resource-group rg-pat --name patrot-func-abc123 --query functionKeys.default --output tsv") echo "$FAKE_KEY" ;;
  *) echo "fake az: unexpected call: $*" >&2; exit 2 ;;
esac
"""


def check_step() -> dict:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["deploy"]["steps"]
    (step,) = [s for s in steps if "check-status.sh" in s.get("run", "")]
    return step


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    if shutil.which("openssl") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("openssl is missing: it makes the local HTTPS server's certificate")
        pytest.skip("skipped: no openssl to make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "cert.pem", d / "key.pem")
    return ctx, d / "cert.pem"


@pytest.mark.parametrize("responses, rc, says", [
    ([(200, HEALTHY)], 0, "all 2 targets healthy"),
    ([(200, UNHEALTHY)], 1, "ml: NEEDS ATTENTION: expires_soon, over_cap"),
    ([(500, CONFIG_INVALID)], 1, "HTTP 500: config_invalid"),
])
def test_the_workflow_step_checks_the_deployed_app(tmp_path, tls, responses, rc, says):
    ctx, cert = tls
    step = check_step()
    server = Scripted(responses, tls=ctx)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "az").write_text(FAKE_AZ)
    (bindir / "az").chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", FAKE_AZ_LOG=str(tmp_path / "az.log"),
               FAKE_HOST=f"127.0.0.1:{server.port}", FAKE_KEY=KEY, CURL_CA_BUNDLE=str(cert),
               RESOURCE_GROUP="rg-pat", FUNCTION_APP="patrot-func-abc123", STATUS_INITIAL_DELAY_SECONDS="1")
    assert set(step["env"]) == {"RESOURCE_GROUP", "FUNCTION_APP"}
    try:
        # GitHub runs a bash step as `bash --noprofile --norc -eo pipefail {0}`
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=120)
    finally:
        server.close()
    assert proc.returncode == rc, proc.stdout + proc.stderr
    assert says in proc.stdout + proc.stderr
    (req,) = server.requests
    assert req["path"] == "/api/Status" and req["headers"]["x-functions-key"] == KEY
    # the only place the key shows is the runner's mask command, which the runner swallows
    out = (proc.stdout + proc.stderr).replace(f"::add-mask::{KEY}", "")
    assert KEY not in out
    assert f"::add-mask::{KEY}" in proc.stdout, "the key is masked before anything could print it"
    assert KEY not in (tmp_path / "az.log").read_text(), "the key is on no command line"
