"""A consumer of a Databricks OAuth secret that pat-rotator keeps rotated (contract section 9).

Reads the secret from Key Vault with the consumer's managed identity, takes the service
principal's application id from the secret's `databricks-client-id` tag, signs in to the
workspace with OAuth machine-to-machine (the Databricks SDK exchanges client id + secret for
one-hour tokens and renews them) and asks who it is.

    KEY_VAULT_URL=https://<vault>.vault.azure.net SECRET_NAME=databricks-etl-oauth \
    DATABRICKS_HOST=https://adb-....azuredatabricks.net [AZURE_CLIENT_ID=<consumer identity>] \
    python consumer.py

(terraform output consumer_environment has the values.) Read the secret at start and again
whenever the workspace answers 401: pat-rotator writes a new version before it revokes the
old secret, so the latest version always works. Exit 0 signed in, 1 failed. The secret is
never printed.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from urllib.parse import urlparse

from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient
from databricks.sdk import WorkspaceClient

CONTENT_TYPE = "databricks-oauth-secret"  # contract section 9


def is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_credential(vault_url: str, secret_name: str) -> tuple[str, str]:
    """(client id, client secret) from the latest version of the secret."""
    credential = DefaultAzureCredential(managed_identity_client_id=os.environ.get("AZURE_CLIENT_ID"))
    # A local test vault on loopback answers a challenge for its own address, not for
    # vault.azure.net; a real vault is always checked.
    client = SecretClient(vault_url, credential, verify_challenge_resource=not is_loopback(vault_url))
    secret = client.get_secret(secret_name)
    props = secret.properties
    if props.content_type != CONTENT_TYPE:
        raise SystemExit(f"consumer: {secret_name} holds {props.content_type!r}, not a Databricks OAuth secret ({CONTENT_TYPE})")
    client_id = (props.tags or {}).get("databricks-client-id")
    if not client_id:
        raise SystemExit(f"consumer: {secret_name} has no databricks-client-id tag (not written by pat-rotator?)")
    print(f"consumer: read {secret_name} version {props.version} (secret id {(props.tags or {}).get('databricks-secret-id', '?')}, "
          f"expires {props.expires_on}) for client {client_id}", file=sys.stderr)
    return client_id, secret.value


def main() -> int:
    vault_url, secret_name, host = (os.environ.get(k, "") for k in ("KEY_VAULT_URL", "SECRET_NAME", "DATABRICKS_HOST"))
    missing = [k for k, v in (("KEY_VAULT_URL", vault_url), ("SECRET_NAME", secret_name), ("DATABRICKS_HOST", host)) if not v]
    if missing:
        print(f"consumer: set {', '.join(missing)}", file=sys.stderr)
        return 1
    client_id, client_secret = read_credential(vault_url, secret_name)
    # The same as DATABRICKS_CLIENT_ID / DATABRICKS_CLIENT_SECRET in the environment, or a
    # dbt profile with auth_type: oauth, client_id and client_secret.
    workspace = WorkspaceClient(host=host, client_id=client_id, client_secret=client_secret, auth_type="oauth-m2m")
    me = workspace.current_user.me()
    print(f"consumer: signed in to {host} as {me.user_name or me.display_name} (OAuth M2M)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
