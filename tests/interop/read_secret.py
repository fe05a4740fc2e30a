"""Reads the secret pat-rotator wrote with the official Python clients, then uses the PAT.

Environment: the emulators' (IDENTITY_ENDPOINT, IDENTITY_HEADER, REQUESTS_CA_BUNDLE) plus
VAULT_URL, SECRET_NAME, WORKSPACE_URL. Prints one JSON object; never prints the token itself
(only a SHA-256 of it, so the caller can compare).
"""
import hashlib
import json
import os
import sys

from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import PermissionDenied

out = {}
client = SecretClient(os.environ["VAULT_URL"], ManagedIdentityCredential(), verify_challenge_resource=False)
secret = client.get_secret(os.environ["SECRET_NAME"])
value = secret.value
out["value_sha256"] = hashlib.sha256(value.encode()).hexdigest()
out["version"] = secret.properties.version
out["content_type"] = secret.properties.content_type
out["tags"] = secret.properties.tags
out["expires_on"] = int(secret.properties.expires_on.timestamp()) if secret.properties.expires_on else None

ws = WorkspaceClient(host=os.environ["WORKSPACE_URL"], token=value, auth_type="pat")
try:
    tokens = list(ws.tokens.list())
    out["databricks"] = "ok"
    out["token_ids_seen"] = [t.token_id for t in tokens]
except PermissionDenied as e:
    out["databricks"] = "PermissionDenied"
    out["message"] = str(e).replace(value, "<redacted>")
json.dump(out, sys.stdout)
