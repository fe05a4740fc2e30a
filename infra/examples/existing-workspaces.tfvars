# Existing workspaces instead of a new one, one in each access mode, and targets with
# their own lifetimes. Resource ids are placeholders.

location            = "westeurope"
name_prefix         = "patrot"
resource_group_name = "rg-pat-rotator"

existing_databricks_workspaces = {
  # Management-header mode: Contributor on the workspace resource for the app identity.
  analytics = {
    resource_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-analytics/providers/Microsoft.Databricks/workspaces/dbw-analytics"
    access_mode = "azure_contributor"
  }
  # Service-principal mode: the identity becomes a workspace service principal in the
  # group "pat-rotator" (the deployer must be a workspace admin). The workspace's token
  # ACL is left alone: a workspace admin adds the group with CAN_USE once
  # (infra/README.md, "Databricks token permissions").
  ml = {
    resource_id   = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-ml/providers/Microsoft.Databricks/workspaces/dbw-ml"
    workspace_url = "https://adb-1234567890123456.7.azuredatabricks.net"
    access_mode   = "workspace_service_principal"
  }
}

# Opt-in only: manage the tokens ACL here. It is AUTHORITATIVE, so everyone who must
# keep token access has to be listed (removing CAN_USE revokes their tokens).
# manage_databricks_token_permissions = true
# databricks_token_usage_extra_acl = [
#   { group_name = "users", permission_level = "CAN_USE" },
# ]

# The alarm: who hears about a failed or missing RotatePat run.
alert_email_addresses = ["data-platform-oncall@example.com"]

targets = [
  { name = "analytics-prod", workspace = "analytics", secret_name = "analytics-prod-pat" },
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
