"""infra/scripts/provision.sh against a scripted HTTP server on 127.0.0.1.

Checks the retries (503/Retry-After, 502 propagation errors, connection errors), the
bounded wait, the exit codes, and that neither the function key nor anything that
looks like a token ever appears in the script's output or on a command line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import INFRA

SCRIPT = INFRA / "scripts" / "provision.sh"
KEY = "Zk3y-0nly_ForTests/abc+def=="
TOKEN = "dapi0123456789abcdef0123456789abcdef"

pytestmark = pytest.mark.skipif(shutil.which("curl") is None or shutil.which("bash") is None, reason="needs bash and curl")


def error(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def result(action: str, reason: str = "no_secret", **extra) -> bytes:
    doc = {
        "target": "analytics",
        "action": action,
        "reason": reason,
        "secret_id": "https://kv.vault.azure.net/secrets/databricks-pat/0123456789abcdef0123456789abcdef",
        "token_id": "5715498424f15ee0213be729257b53fc35a47d5953e3bdfd8ed22a0b93b339f4",
        "expires_at": "2027-02-24T03:00:00Z",
        "revoked_token_ids": [],
        "error": None,
    }
    doc.update(extra)
    return json.dumps(doc).encode()


class Scripted:
    """Answers requests from a list of (status, headers, body[, delay]); the last one repeats."""

    def __init__(self, responses):
        self.responses = list(responses)
        self.requests = []
        self.lock = threading.Lock()
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _handler(self):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with outer.lock:
                    outer.requests.append(
                        {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
                    )
                    index = min(len(outer.requests), len(outer.responses)) - 1
                    status, headers, payload, *rest = outer.responses[index]
                if rest:
                    time.sleep(rest[0])
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/ProvisionPat"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


JSON = {"Content-Type": "application/json"}


def run(url, target="analytics", key=KEY, timeout=20, extra_env=None, wall=60):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PROVISION_URL": url,
        "PROVISION_TARGET": target,
        "PROVISION_FUNCTION_KEY": key,
        "PROVISION_TIMEOUT_SECONDS": str(timeout),
        "PROVISION_INITIAL_DELAY_SECONDS": "1",
        "PROVISION_MAX_DELAY_SECONDS": "1",
        "PROVISION_REQUEST_TIMEOUT_SECONDS": "10",
    }
    env.update(extra_env or {})
    started = time.monotonic()
    proc = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=wall)
    proc.elapsed = time.monotonic() - started
    proc.output = proc.stdout + proc.stderr
    return proc


def assert_no_secret(proc):
    assert KEY not in proc.output, "the function key was printed"
    assert TOKEN not in proc.output, "a token value was printed"


def test_success_sends_key_in_header_and_exact_body():
    with Scripted([(200, JSON, result("created"))]) as srv:
        proc = run(srv.url)
    assert proc.returncode == 0, proc.output
    assert "created (no_secret)" in proc.stdout
    assert "https://kv.vault.azure.net/secrets/databricks-pat/" in proc.stdout
    assert len(srv.requests) == 1
    req = srv.requests[0]
    assert req["path"] == "/api/ProvisionPat", "the key must not travel in the URL"
    assert req["headers"]["x-functions-key"] == KEY
    assert req["headers"]["content-type"] == "application/json"
    assert json.loads(req["body"]) == {"target": "analytics"}
    assert_no_secret(proc)


def test_503_throttled_honours_retry_after_then_succeeds():
    responses = [
        (503, {**JSON, "Retry-After": "2"}, error("throttled", "retries ran out on 429")),
        (200, JSON, result("unchanged", "fresh")),
    ]
    with Scripted(responses) as srv:
        proc = run(srv.url)
    assert proc.returncode == 0, proc.output
    assert len(srv.requests) == 2
    assert proc.elapsed >= 2, "Retry-After: 2 must be honoured"
    assert "throttled" in proc.stderr and "retrying in 2s" in proc.stderr
    assert "unchanged (fresh)" in proc.stdout
    assert_no_secret(proc)


def test_propagation_errors_are_retried_with_a_hint():
    responses = [
        (502, JSON, error("keyvault_forbidden", "Key Vault answered 403 Forbidden")),
        (502, JSON, error("databricks_unauthorized", "workspace answered 401")),
        (200, JSON, result("created")),
    ]
    with Scripted(responses) as srv:
        proc = run(srv.url)
    assert proc.returncode == 0, proc.output
    assert len(srv.requests) == 3
    assert "keyvault_forbidden" in proc.stderr and "Key Vault Secrets Officer" in proc.stderr
    assert "databricks_unauthorized" in proc.stderr
    assert_no_secret(proc)


def test_host_errors_and_missing_function_are_retried():
    responses = [
        (502, {"Content-Type": "text/html"}, b"<html>Bad Gateway</html>"),
        (404, {"Content-Type": "text/html"}, b"<html>Not Found</html>"),
        (401, {}, b""),
        (200, JSON, result("reprovisioned", "revoked_in_workspace")),
    ]
    with Scripted(responses) as srv:
        proc = run(srv.url)
    assert proc.returncode == 0, proc.output
    assert len(srv.requests) == 4
    assert "reprovisioned (revoked_in_workspace)" in proc.stdout
    assert "function key rejected" in proc.stderr
    assert_no_secret(proc)


def test_unknown_target_fails_after_its_grace_period():
    with Scripted([(404, JSON, error("unknown_target", "no target named 'analytics'"))]) as srv:
        proc = run(srv.url, extra_env={"PROVISION_UNKNOWN_TARGET_GRACE_SECONDS": "2"})
    assert proc.returncode == 1, proc.output
    assert 2 <= len(srv.requests) <= 6
    assert "unknown_target" in proc.stderr and "PAT_TARGETS" in proc.stderr
    assert_no_secret(proc)


@pytest.mark.parametrize(
    "status,code",
    [
        (400, "invalid_request"),
        (500, "config_invalid"),
        (502, "keyvault_secret_deleted"),
        (502, "databricks_quota_exceeded"),
        (502, "databricks_lifetime_too_long"),
        (405, ""),
    ],
)
def test_permanent_errors_fail_at_once(status, code):
    with Scripted([(status, JSON, error(code, "permanent problem") if code else b"")]) as srv:
        proc = run(srv.url)
    assert proc.returncode == 1, proc.output
    assert len(srv.requests) == 1, "a permanent error must not be retried"
    assert "FAILED" in proc.stderr
    if code:
        assert code in proc.stderr
    assert_no_secret(proc)


def test_action_failed_in_a_200_is_classified_by_its_error_code():
    body = result("failed", error={"code": "databricks_quota_exceeded", "message": "QUOTA_EXCEEDED"})
    with Scripted([(200, JSON, body)]) as srv:
        proc = run(srv.url)
    assert proc.returncode == 1, proc.output
    assert "databricks_quota_exceeded" in proc.stderr


def test_gives_up_after_the_bounded_wait():
    with Scripted([(401, {}, b"")]) as srv:
        proc = run(srv.url, timeout=3)
    assert proc.returncode == 3, proc.output
    assert proc.elapsed < 8, f"the wait is bounded by PROVISION_TIMEOUT_SECONDS (took {proc.elapsed:.1f}s)"
    assert len(srv.requests) >= 2
    assert "GAVE UP" in proc.stderr and "NOT provisioned" in proc.stderr
    assert "function key rejected" in proc.stderr
    assert_no_secret(proc)


def test_a_long_retry_after_never_extends_the_bound():
    with Scripted([(503, {**JSON, "Retry-After": "3600"}, error("throttled", "slow down"))]) as srv:
        proc = run(srv.url, timeout=3)
    assert proc.returncode == 3, proc.output
    assert proc.elapsed < 5
    assert len(srv.requests) == 1


def test_unreachable_host_is_retried_then_given_up():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = run(f"http://127.0.0.1:{port}/api/ProvisionPat", timeout=3)
    assert proc.returncode == 3, proc.output
    assert "could not complete the request" in proc.stderr
    assert_no_secret(proc)


def test_token_like_fields_and_echoed_keys_are_never_printed():
    # A misbehaving server: a token value in an unexpected field, the key echoed in an
    # error message. Neither may reach the output.
    responses = [
        (502, JSON, error("keyvault_error", f"upstream said: key={KEY} token={TOKEN}")),
        (200, JSON, result("rotated", "expiring", token_value=TOKEN, note=f"your key is {KEY}")),
    ]
    with Scripted(responses) as srv:
        proc = run(srv.url)
    assert proc.returncode == 0, proc.output
    assert "[redacted]" in proc.stderr
    assert_no_secret(proc)


def test_the_key_is_not_on_any_command_line():
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        pytest.skip("needs /proc")
    seen = []

    def scan(stop):
        while not stop.is_set():
            for entry in proc_dir.iterdir():
                if entry.name.isdigit():
                    try:
                        cmdline = (entry / "cmdline").read_bytes()
                    except OSError:
                        continue
                    if KEY.encode() in cmdline:
                        seen.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
            time.sleep(0.05)

    stop = threading.Event()
    scanner = threading.Thread(target=scan, args=(stop,), daemon=True)
    with Scripted([(200, JSON, result("created"), 1.5)]) as srv:  # slow answer: curl is alive for 1.5 s
        scanner.start()
        proc = run(srv.url)
        stop.set()
        scanner.join()
    assert proc.returncode == 0, proc.output
    assert not seen, "the function key appeared in a process command line"


@pytest.mark.parametrize(
    "env,message",
    [
        ({"PROVISION_FUNCTION_KEY": ""}, "PROVISION_FUNCTION_KEY is not set"),
        ({"PROVISION_TARGET": "Bad_Name"}, "not a valid target name"),
        ({"PROVISION_URL": "http://example.com/api/ProvisionPat"}, "must be an https:// URL"),
        ({"PROVISION_URL": f"https://app.azurewebsites.net/api/ProvisionPat?code={KEY}"}, "without query string"),
        ({"PROVISION_FUNCTION_KEY": 'bad"key with spaces'}, "value not shown"),
        ({"PROVISION_TIMEOUT_SECONDS": "soon"}, "whole number"),
    ],
)
def test_usage_errors_exit_2_without_sending(env, message):
    with Scripted([(200, JSON, result("created"))]) as srv:
        merged = {"PROVISION_URL": srv.url, "PROVISION_TARGET": "analytics", "PROVISION_FUNCTION_KEY": KEY}
        merged.update(env)
        proc = run(merged.pop("PROVISION_URL"), target=merged.pop("PROVISION_TARGET"), key=merged.pop("PROVISION_FUNCTION_KEY"), extra_env=merged)
    assert proc.returncode == 2, proc.output
    assert message in proc.stderr
    assert not srv.requests
    assert "bad\"key" not in proc.output
    assert KEY not in proc.output
