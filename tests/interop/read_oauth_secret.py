"""Reads the OAuth secret pat-rotator wrote with the official Key Vault client, and signs in to
the workspace with it as the official databricks-sdk does for `oauth-m2m`.

Environment: the emulators' (IDENTITY_ENDPOINT, IDENTITY_HEADER, REQUESTS_CA_BUNDLE) plus
VAULT_URL, SECRET_NAME, WORKSPACE_URL. The client id comes from the version's
`databricks-client-id` tag, the secret from its value. Prints one JSON object; never prints the
secret (only its SHA-256).
"""
import hashlib
import json
import os
import sys

from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient
from databricks.sdk import WorkspaceClient

out = {}
client = SecretClient(os.environ["VAULT_URL"], ManagedIdentityCredential(), verify_challenge_resource=False)
secret = client.get_secret(os.environ["SECRET_NAME"])
value = secret.value
tags = secret.properties.tags or {}
out["value_sha256"] = hashlib.sha256(value.encode()).hexdigest()
out["content_type"] = secret.properties.content_type
out["tags"] = tags
out["expires_on"] = int(secret.properties.expires_on.timestamp()) if secret.properties.expires_on else None

ws = WorkspaceClient(
    host=os.environ["WORKSPACE_URL"],
    client_id=tags.get("databricks-client-id"),
    client_secret=value,
    auth_type="oauth-m2m",
)
try:
    me = ws.current_user.me()
    out["me"] = {"id": me.id, "user_name": me.user_name}
    out["auth_type"] = ws.config.auth_type
except Exception as e:  # noqa: BLE001 - reported to the test, which fails on it
    out["error"] = {"type": type(e).__name__, "message": str(e).replace(value, "<redacted>")[:300]}
json.dump(out, sys.stdout)
