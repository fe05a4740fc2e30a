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
  # Service-principal mode: workspace SP + token CAN_USE (the deployer must be a
  # workspace admin). The token ACL is authoritative: keep the principals that already
  # use tokens in databricks_token_usage_extra_acl.
  ml = {
    resource_id   = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-ml/providers/Microsoft.Databricks/workspaces/dbw-ml"
    workspace_url = "https://adb-1234567890123456.7.azuredatabricks.net"
    access_mode   = "workspace_service_principal"
  }
}

databricks_token_usage_extra_acl = [
  { group_name = "users", permission_level = "CAN_USE" },
]

targets = [
  { name = "analytics-prod", workspace = "analytics", secret_name = "analytics-prod-pat" },
  { name = "ml-batch", workspace = "ml", secret_name = "ml-batch-pat", lifetime_days = 30, renew_before_days = 10, revoke_grace_hours = 2 },
]
