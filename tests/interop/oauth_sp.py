"""The official databricks-sdk as a real client of the fake workspace's OAuth secrets.

An admin (the managed identity, its Entra ID token fetched with azure-identity) finds the
service principal with `service_principals.list(filter=...)`, creates two OAuth secrets with
`service_principal_secrets_proxy`, lists them page by page, and deletes the first. A
`WorkspaceClient(auth_type="oauth-m2m")` signs in with the first secret (discovering the token
endpoint through /.well-known/databricks-config) and calls `current_user.me()`.

Two phases, so the test can act on the workspace in between: phase 1 ends with one JSON line on
stdout and waits for a line on stdin; phase 2 then checks that the signed-in client's token was
forced out and that a new client cannot sign in with the deleted secret, and prints a second
JSON line.

Environment: the emulators' (IDENTITY_ENDPOINT, IDENTITY_HEADER, REQUESTS_CA_BUNDLE) plus
WORKSPACE_URL and SP_APP_ID. Never prints a secret or token: only SHA-256 digests of secrets.
"""
import hashlib
import json
import os
import sys

from azure.identity import ManagedIdentityCredential
from databricks.sdk import WorkspaceClient

DATABRICKS_RESOURCE = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d"
host = os.environ["WORKSPACE_URL"]
app_id = os.environ["SP_APP_ID"]
issued = []  # every secret value seen, to scrub from messages


def digest(value):
    return hashlib.sha256(value.encode()).hexdigest()


def scrub(text):
    for v in issued:
        text = text.replace(v, "<redacted>")
    return text


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def failure(e):
    return {"type": type(e).__name__, "message": scrub(str(e))[:300]}


token = ManagedIdentityCredential().get_token(DATABRICKS_RESOURCE + "/.default").token
admin = WorkspaceClient(host=host, token=token, auth_type="pat")

out = {}
found = list(admin.service_principals.list(filter=f'applicationId eq "{app_id}"'))
out["found"] = [{"id": sp.id, "application_id": sp.application_id, "display_name": sp.display_name} for sp in found]
sp_id = found[0].id

proxy = admin.service_principal_secrets_proxy
first = proxy.create(service_principal_id=sp_id, lifetime="7776000s")
second = proxy.create(service_principal_id=sp_id)
issued += [first.secret, second.secret]
out["created"] = [
    {
        "id": s.id,
        "secret_sha256": digest(s.secret),
        "status": s.status,
        "create_time": s.create_time,
        "expire_time": s.expire_time,
        "has_secret_hash": bool(s.secret_hash),
    }
    for s in (first, second)
]
# page_size=1: the SDK follows next_page_token until it is absent.
out["listed"] = [{"id": s.id, "status": s.status} for s in proxy.list(service_principal_id=sp_id, page_size=1)]

m2m = WorkspaceClient(host=host, client_id=app_id, client_secret=first.secret, auth_type="oauth-m2m")
me = m2m.current_user.me()
out["me"] = {"id": me.id, "user_name": me.user_name, "display_name": me.display_name}
out["auth_type"] = m2m.config.auth_type

proxy.delete(service_principal_id=sp_id, secret_id=first.id)
out["after_delete"] = [s.id for s in proxy.list(service_principal_id=sp_id)]
# The token the client already holds keeps working after its secret was deleted.
try:
    out["me_after_delete"] = m2m.current_user.me().id
except Exception as e:  # noqa: BLE001 - reported to the test
    out["me_after_delete"] = failure(e)
emit(out)

sys.stdin.readline()  # the test forces the minted tokens out meanwhile

out = {}
try:
    out["old_client"] = {"ok": m2m.current_user.me().id}
except Exception as e:  # noqa: BLE001
    out["old_client"] = failure(e)
try:
    fresh = WorkspaceClient(host=host, client_id=app_id, client_secret=first.secret, auth_type="oauth-m2m")
    out["new_client"] = {"ok": fresh.current_user.me().id}
except Exception as e:  # noqa: BLE001
    out["new_client"] = failure(e)
try:
    other = WorkspaceClient(host=host, client_id=app_id, client_secret=second.secret, auth_type="oauth-m2m")
    out["second_secret"] = {"ok": other.current_user.me().id}
except Exception as e:  # noqa: BLE001
    out["second_secret"] = failure(e)
emit(out)
