"""Interop check: the real Python clients against a running pat-rotator-emulators.

Not part of `cargo test` (it needs PyPI packages). Run by hand:

    python3 -m venv /tmp/pyemu
    /tmp/pyemu/bin/pip install azure-identity azure-keyvault-secrets databricks-sdk
    pat-rotator-emulators --dir /tmp/emu --service-principal py-app:py-secret &
    set -a; . /tmp/emu/env.sh; set +a
    /tmp/pyemu/bin/python emulators/scripts/python_interop.py

Last run: azure-identity 1.27.0 / msal 1.39.0, azure-keyvault-secrets 4.12.0,
databricks-sdk 0.162.0 — every step passed. It exits non-zero on the first surprise.
"""
import os, sys
from azure.identity import ManagedIdentityCredential, ClientSecretCredential
from azure.keyvault.secrets import SecretClient
from azure.core.exceptions import ResourceNotFoundError, ResourceExistsError, HttpResponseError
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import PermissionDenied

kv = os.environ["KEY_VAULT_URL_0"]
cred = ManagedIdentityCredential()
c = SecretClient(kv, cred, verify_challenge_resource=False)
s = c.set_secret("py-secret", "py-value", content_type="databricks-pat", tags={"managed-by": "pat-rotator"})
print("set", s.properties.version, s.properties.content_type)
print("get", c.get_secret("py-secret").value)
print("versions", [p.version for p in c.list_properties_of_secret_versions("py-secret")])
try:
    c.get_secret("nope")
except ResourceNotFoundError as e:
    print("notfound", e.error.code if e.error else e)
else:
    sys.exit("missing secret was found")
poller = c.begin_delete_secret("py-secret"); poller.wait()
try:
    c.set_secret("py-secret", "x")
except (ResourceExistsError, HttpResponseError) as e:
    print("conflict", type(e).__name__, e.status_code, e.error.code if e.error else None)
    assert e.status_code == 409
else:
    sys.exit("set on a soft-deleted name succeeded")

# Client secret through the AAD fake. disable_instance_discovery=True is required: otherwise
# MSAL validates the unknown authority with login.microsoftonline.com (never reachable here).
sp = ClientSecretCredential(os.environ["AZURE_TENANT_ID"], "py-app", "py-secret", disable_instance_discovery=True)
tok = sp.get_token("https://vault.azure.net/.default")
print("sp token ok", tok.expires_on > 0)
c2 = SecretClient(kv, sp, verify_challenge_resource=False)
print("sp set", c2.set_secret("sp-secret", "v").value)

# databricks-sdk: "pat" auth just sends the bearer, so an Entra ID token from the identity
# fake works as well as a PAT.
mi = cred.get_token("2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default").token
w = WorkspaceClient(host=os.environ["DATABRICKS_HOST_0"], token=mi, auth_type="pat")
print("list empty", list(w.tokens.list()))
created = w.tokens.create(comment="py/1", lifetime_seconds=3600)
print("created", created.token_info.token_id[:8], created.token_info.comment)
w2 = WorkspaceClient(host=os.environ["DATABRICKS_HOST_0"], token=created.token_value, auth_type="pat")
print("pat list", [t.comment for t in w2.tokens.list()])
w.tokens.delete(created.token_info.token_id)
try:
    list(w2.tokens.list())
except PermissionDenied as e:
    print("revoked -> PermissionDenied:", e)
else:
    sys.exit("a revoked PAT still authenticated")
