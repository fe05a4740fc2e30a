# Existing workspaces instead of a new one, one in each access mode, an existing vault next
# to the one created here, targets with their own lifetimes, and Key Vault events. Resource
# ids are placeholders.

location            = "westeurope"
name_prefix         = "patrot"
resource_group_name = "rg-pat-rotator"

existing_databricks_workspaces = {
  # Management-header mode: Contributor on the workspace resource for the app identity.
  analytics = {
    resource_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-analytics/providers/Microsoft.Databricks/workspaces/dbw-analytics"
    access_mode = "azure_contributor"
  }
  # Service-principal mode (the default access_mode, least privilege; at most one
  # workspace): Terraform, running as a workspace admin there, adds the identity as a
  # workspace service principal to the group "pat-rotator" and ADDS the group's token
  # CAN_USE to the workspace's token permissions (scripts/grant-token-use.sh; nothing else
  # in that ACL changes). No Azure role on the workspace.
  ml = {
    resource_id   = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-ml/providers/Microsoft.Databricks/workspaces/dbw-ml"
    workspace_url = "https://adb-1234567890123456.7.azuredatabricks.net"
  }
}

# An existing vault (RBAC authorization, in the azurerm provider's subscription for Key Vault
# events) that targets may name with key_vault = "shared". The identity gets the custom
# get/list/set role there too (key_vault_role = "custom", the default; "builtin" = Key Vault
# Secrets Officer where you may not create role definitions).
existing_key_vaults = {
  shared = {
    resource_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-shared/providers/Microsoft.KeyVault/vaults/kv-shared-secrets"
    location    = "westeurope"
  }
}

# Key Vault events (SecretEvent): a system topic per vault is created now; subscribe the
# function in a second apply, once the code with SecretEvent is deployed. A vault that
# already has a system topic names it instead:
# existing_system_topic_ids = { shared = "/subscriptions/.../resourceGroups/rg-shared/providers/Microsoft.EventGrid/systemTopics/kv-shared-secrets-events" }
enable_event_subscriptions = false

# A fleet too large for one app setting: the targets' JSON goes to a blob (PAT_TARGETS_BLOB)
# and PAT_ALLOWED_VAULTS lists the targets' vaults. The deploying identity needs Storage Blob
# Data Contributor on the new targets account (or above) to write it; whoever can write that
# blob decides which of those vaults receive new credentials (infra/README.md).
# targets_source = "blob"

# Opt-in only: manage the tokens ACL here. It is AUTHORITATIVE, so everyone who must
# keep token access has to be listed (removing CAN_USE revokes their tokens).
# manage_databricks_token_permissions = true
# databricks_token_usage_extra_acl = [
#   { group_name = "users", permission_level = "CAN_USE" },
# ]

# The alarm: who hears about a failed or missing RotatePat run.
alert_email_addresses = ["data-platform-oncall@example.com"]

targets = [
  # keep_while_used: a superseded token still in use is kept past its grace (the identity is
  # a workspace admin in azure_contributor mode anyway, which the usage lookup needs).
  { name = "analytics-prod", workspace = "analytics", secret_name = "analytics-prod-pat", keep_while_used = true },
  # a secret in the existing vault "shared"
  { name = "reporting", workspace = "analytics", secret_name = "reporting-pat", key_vault = "shared" },
  { name = "ml-batch", workspace = "ml", secret_name = "ml-batch-pat", lifetime_days = 30, renew_before_days = 10, revoke_grace_hours = 2 },
  # A PAT of its own service principal (contract section 8): an app registration created
  # here, trusting the Function App's identity; a plain member of the "ml" workspace
  # (the databricks provider's workspace), added by Terraform.
  { name = "bi-tool", workspace = "ml", secret_name = "bi-tool-pat", create_app_registration = true },
  # An existing app registration on a workspace the databricks provider does not serve:
  # give the app the credential in output federated_credential, and follow output
  # databricks_manual_steps in that workspace. No workspace_resource_id is sent for it.
  { name = "vendor-etl", workspace = "analytics", secret_name = "vendor-etl-pat", client_id = "00000000-0000-0000-0000-0000000000aa" },
]
