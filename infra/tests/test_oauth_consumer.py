"""examples/oauth-consumer: the Terraform (a section 9 target, the consumer's identity with Key
Vault Secrets User on that one secret) and consumer.py, run with the real Python clients
(azure-identity, azure-keyvault-secrets, databricks-sdk from .venv-interop, which
scripts/test.sh creates) against local fakes of the managed-identity endpoint, Key Vault
(HTTPS, with its 401 challenge) and a workspace's OAuth M2M endpoints, serving a secret the
way pat-rotator writes it (contract section 9)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest

from conftest import INFRA, REPO, Module, expr, first, unq

EXAMPLE = INFRA / "examples" / "oauth-consumer"


@pytest.fixture(scope="module")
def consumer() -> Module:
    return Module(EXAMPLE)


def test_target_is_an_oauth_secret_of_a_service_principal_made_here(consumer):
    call = consumer.modules()["pat_rotator"]
    assert unq(call["source"]) == "../../modules/pat-rotator"
    (target,) = call["targets"]
    assert unq(target["kind"]) == "sp_oauth_secret"
    assert expr(target["service_principal"]) == "databricks_service_principal.etl.application_id"
    assert not {"scopes", "autoscope", "client_id", "create_app_registration"} & set(target)
    assert target["lifetime_days"] <= 730
    sp = consumer.resource("databricks_service_principal", "etl")
    assert "application_id" not in sp, "Databricks-managed: the workspace generates the application id"


def test_consumer_reads_exactly_one_secret(consumer):
    roles = consumer.resources("azurerm_role_assignment")
    assert list(roles) == ["consumer_reads_secret"]
    ra = roles["consumer_reads_secret"]
    assert unq(ra["role_definition_name"]) == "Key Vault Secrets User"
    assert expr(ra["scope"]) == '"${module.pat_rotator.key_vault_id}/secrets/${var.secret_name}"'
    assert expr(ra["principal_id"]) == "azurerm_user_assigned_identity.consumer.principal_id"
    assert [expr(d) for d in ra["depends_on"]] == ["module.pat_rotator.provisioned_targets"]


def test_databricks_provider_does_not_follow_the_targets(consumer):
    """The target names a resource of the databricks provider, so the provider must not be
    configured from an output that depends on the targets (a cycle): it uses
    new_databricks_workspace, which depends on the workspace only."""
    (dbx,) = [body for entry in consumer.blocks("provider") for name, body in entry.items() if unq(name) == "databricks"]
    assert "module.pat_rotator.new_databricks_workspace" in expr(dbx["host"])
    assert "databricks_workspace." not in expr(dbx["host"]).replace("new_databricks_workspace.", "")
    out = Module(INFRA / "modules" / "pat-rotator").outputs()["new_databricks_workspace"]
    assert "target" not in expr(out["value"]) and "access" not in expr(out["value"])


def test_requirements_are_the_pinned_official_clients():
    pins = [l for l in (EXAMPLE / "requirements.txt").read_text().splitlines() if l and not l.startswith("#")]
    interop = [l for l in (REPO / "tests" / "interop" / "requirements.txt").read_text().splitlines() if l and not l.startswith("#")]
    assert pins == interop


# ---------------------------------------------------------------------------
# consumer.py against local fakes
# ---------------------------------------------------------------------------

CLIENT_ID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
CLIENT_SECRET = "dose-not-print-me-0123456789abcdef"
SECRET_NAME = "databricks-etl-oauth"


def interop_python() -> str:
    for candidate in (os.environ.get("PAT_ROTATOR_PYTHON", ""), str(REPO / ".venv-interop" / "bin" / "python")):
        if candidate and Path(candidate).is_file():
            return candidate
    if os.environ.get("CI") == "true":
        pytest.fail("no .venv-interop (scripts/setup-python.sh); scripts/test.sh creates it before these checks")
    pytest.skip("skipped: no .venv-interop with the official clients (scripts/setup-python.sh)")


class Fakes:
    """The managed-identity endpoint, a vault (HTTPS) and a workspace, on loopback."""

    def __init__(self, tmp: Path, content_type: str = "databricks-oauth-secret"):
        self.tmp, self.content_type, self.seen = tmp, content_type, []
        self.cert, self.key = tmp / "cert.pem", tmp / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key), "-out", str(self.cert),
                        "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
        self.servers = []

    def start(self, handler, tls=False):
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.fakes = self
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.cert, self.key)
            server.socket = ctx.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.servers.append(server)
        return f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"

    def stop(self):
        for s in self.servers:
            s.shutdown()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Identity(Handler):
    def do_GET(self):
        self.server.fakes.seen.append(("identity", self.path))
        if self.headers.get("X-IDENTITY-HEADER") != "identity-header":
            return self.reply(401, {"error": "no header"})
        self.reply(200, {"access_token": "vault-access-token", "expires_on": str(int(time.time()) + 3600),
                         "resource": "https://vault.azure.net", "token_type": "Bearer"})


class Vault(Handler):
    def do_GET(self):
        fakes = self.server.fakes
        fakes.seen.append(("vault", self.path, self.headers.get("Authorization", "")[:6]))
        if self.headers.get("Authorization") != "Bearer vault-access-token":
            return self.reply(401, {"error": {"code": "Unauthorized"}}, {
                "WWW-Authenticate": 'Bearer authorization="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000001", resource="https://vault.azure.net"'})
        if urlparse(self.path).path.rstrip("/") != f"/secrets/{SECRET_NAME}":
            return self.reply(404, {"error": {"code": "SecretNotFound", "message": "no such secret"}})
        base = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.reply(200, {
            "value": CLIENT_SECRET,
            "id": f"{base}/secrets/{SECRET_NAME}/0f1e2d3c4b5a69788796a5b4c3d2e1f0",
            "contentType": fakes.content_type,
            "attributes": {"enabled": True, "created": 1764900000, "updated": 1764900000, "exp": 1796436000, "recoveryLevel": "Recoverable+Purgeable"},
            "tags": {"managed-by": "pat-rotator", "target": "etl", "databricks-host": "adb-1.1.azuredatabricks.net",
                     "databricks-client-id": CLIENT_ID, "databricks-secret-id": "7f6e5d4c", "rotated-at": "2026-12-05T03:00:00Z"},
        })


class Workspace(Handler):
    def do_GET(self):
        fakes = self.server.fakes
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        path = urlparse(self.path).path
        fakes.seen.append(("workspace", "GET", path))
        if path == "/.well-known/databricks-config":
            return self.reply(200, {"oidc_endpoint": f"{base}/oidc", "workspace_id": "1111111111111111"})
        if path == "/oidc/.well-known/oauth-authorization-server":
            return self.reply(200, {"authorization_endpoint": f"{base}/oidc/v1/authorize", "token_endpoint": f"{base}/oidc/v1/token"})
        if path == "/api/2.0/preview/scim/v2/Me":
            if self.headers.get("Authorization") != "Bearer m2m-access-token":
                return self.reply(401, {"error_code": "401", "message": "Invalid access token."})
            return self.reply(200, {"id": "42", "userName": CLIENT_ID, "displayName": "etl (OAuth secret rotated by pat-rotator)"})
        self.reply(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"No API found for 'GET {path}'"})

    def do_POST(self):
        fakes = self.server.fakes
        path = urlparse(self.path).path
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        fakes.seen.append(("workspace", "POST", path, body))
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if path != "/oidc/v1/token" or "grant_type=client_credentials" not in body:
            return self.reply(400, {"error": "invalid_request"})
        if self.headers.get("Authorization") != f"Basic {basic}":
            return self.reply(401, {"error": "invalid_client", "error_description": "Client authentication failed"})
        self.reply(200, {"access_token": "m2m-access-token", "token_type": "Bearer", "expires_in": 3600, "scope": "all-apis"})


def run_consumer(tmp_path, content_type="databricks-oauth-secret"):
    python = interop_python()
    if shutil.which("openssl") is None:
        pytest.skip("skipped: no openssl to make the fake vault's certificate")
    fakes = Fakes(tmp_path, content_type)
    try:
        identity = fakes.start(Identity)
        vault = fakes.start(Vault, tls=True)
        workspace = fakes.start(Workspace)
        env = {
            "PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path),
            "KEY_VAULT_URL": vault, "SECRET_NAME": SECRET_NAME, "DATABRICKS_HOST": workspace,
            "AZURE_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
            "IDENTITY_ENDPOINT": f"{identity}/msi/token", "IDENTITY_HEADER": "identity-header",
            "REQUESTS_CA_BUNDLE": str(fakes.cert), "SSL_CERT_FILE": str(fakes.cert),
            "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
        }
        proc = subprocess.run([python, str(EXAMPLE / "consumer.py")], env=env, capture_output=True, text=True, timeout=120)
        return proc, fakes.seen
    finally:
        fakes.stop()


def test_consumer_reads_the_secret_and_signs_in_with_oauth_m2m(tmp_path):
    proc, seen = run_consumer(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"signed in to" in proc.stdout and f"as {CLIENT_ID} (OAuth M2M)" in proc.stdout, proc.stdout
    assert CLIENT_SECRET not in proc.stdout + proc.stderr, "the secret must never be printed"
    posts = [s for s in seen if s[0] == "workspace" and s[1] == "POST"]
    assert len(posts) == 1 and posts[0][2] == "/oidc/v1/token" and "scope=all-apis" in posts[0][3]
    assert any(s[:3] == ("workspace", "GET", "/api/2.0/preview/scim/v2/Me") for s in seen)
    # the vault was read with the consumer's managed-identity token, after its challenge
    assert [s[2] for s in seen if s[0] == "vault"] == ["", "Bearer"]


def test_consumer_refuses_a_secret_that_is_not_an_oauth_secret(tmp_path):
    proc, seen = run_consumer(tmp_path, content_type="databricks-pat")
    assert proc.returncode != 0
    assert "not a Databricks OAuth secret" in proc.stdout + proc.stderr
    assert not any(s[0] == "workspace" for s in seen), "nothing is sent to the workspace"
    assert CLIENT_SECRET not in proc.stdout + proc.stderr
