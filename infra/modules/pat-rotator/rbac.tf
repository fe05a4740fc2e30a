# Role assignments of the Function App's user-assigned identity. Each is scoped to the
# single resource it is needed for (least privilege). Azure RBAC changes take a few
# minutes to propagate; the provisioning step (deploy.tf) retries for that. They do not
# depend on the Function App (the identity is its own resource), so they are created
# alongside it rather than after it.

locals {
  function_principal_id = azurerm_user_assigned_identity.function.principal_id
}

# Write new secret versions (and read the current one) in the vault: data plane only.
#
# Why Key Vault Secrets Officer: pat-rotator reads the latest version of a secret (get),
# lists a secret's versions (readMetadata) and writes new versions (set). No built-in role
# grants set without delete: Key Vault Secrets User only reads, Secrets Officer holds
# every secrets data action (Microsoft.KeyVault/vaults/secrets/*: also delete, backup,
# restore, recover). So the built-in choice is Secrets Officer, on this one vault (which
# holds only pat-rotator's secrets). key_vault_role = "custom" instead creates a role with
# exactly the three data actions pat-rotator uses, assignable only on this vault; creating
# a role definition needs Owner or User Access Administrator (Microsoft.Authorization/
# roleDefinitions/write), which Role Based Access Control Administrator does not have.
resource "azurerm_role_definition" "secrets_writer" {
  count = var.key_vault_role == "custom" ? 1 : 0

  name        = "pat-rotator secrets writer (${local.names.key_vault})"
  scope       = azurerm_key_vault.this.id
  description = "pat-rotator: read, list and write secret versions in one vault; no delete, backup, restore, recover or purge."

  permissions {
    data_actions = [
      "Microsoft.KeyVault/vaults/secrets/getSecret/action",
      "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
      "Microsoft.KeyVault/vaults/secrets/setSecret/action",
    ]
  }

  assignable_scopes = [azurerm_key_vault.this.id]
}

resource "azurerm_role_assignment" "key_vault_secrets_officer" {
  scope                = azurerm_key_vault.this.id
  role_definition_name = var.key_vault_role == "custom" ? null : "Key Vault Secrets Officer"
  role_definition_id   = var.key_vault_role == "custom" ? azurerm_role_definition.secrets_writer[0].role_definition_resource_id : null
  principal_id         = local.function_principal_id
  principal_type       = "ServicePrincipal"
  description          = "pat-rotator: read and write the secrets in this vault"
}

# Identity-based AzureWebJobsStorage (timer locks, host keys) and the Flex Consumption
# deployment container, both in this dedicated account.
resource "azurerm_role_assignment" "storage_blob_data_owner" {
  scope                = azurerm_storage_account.host.id
  role_definition_name = "Storage Blob Data Owner"
  principal_id         = local.function_principal_id
  principal_type       = "ServicePrincipal"
  description          = "pat-rotator: Functions host storage and deployment package"
}

# The Functions host writes diagnostic events to Table storage; without a table data
# role on its host storage it logs AZFD0003 on every start.
resource "azurerm_role_assignment" "storage_table_data_contributor" {
  scope                = azurerm_storage_account.host.id
  role_definition_name = "Storage Table Data Contributor"
  principal_id         = local.function_principal_id
  principal_type       = "ServicePrincipal"
  description          = "pat-rotator: Functions host tables (diagnostic events, AZFD0003 otherwise)"
}

# Telemetry with Entra ID authentication (local auth is disabled on the component).
resource "azurerm_role_assignment" "monitoring_metrics_publisher" {
  scope                = azurerm_application_insights.this.id
  role_definition_name = "Monitoring Metrics Publisher"
  principal_id         = local.function_principal_id
  principal_type       = "ServicePrincipal"
  description          = "pat-rotator: send telemetry to Application Insights"
}

# Management-header access mode: Contributor on the workspace resource lets the identity
# call the workspace with X-Databricks-Azure-SP-Management-Token /
# X-Databricks-Azure-Workspace-Resource-Id (those targets carry workspace_resource_id).
resource "azurerm_role_assignment" "workspace_contributor" {
  for_each = local.contributor_workspace_keys

  scope                = local.workspaces[each.key].resource_id
  role_definition_name = "Contributor"
  principal_id         = local.function_principal_id
  principal_type       = "ServicePrincipal"
  description          = "pat-rotator: manage its own PATs in this workspace (management-token headers)"
}
