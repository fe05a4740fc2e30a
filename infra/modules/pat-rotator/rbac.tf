# Role assignments of the Function App's user-assigned identity. Each is scoped to the
# single resource it is needed for (least privilege). Azure RBAC changes take a few
# minutes to propagate; the provisioning step (deploy.tf) retries for that. They do not
# depend on the Function App (the identity is its own resource), so they are created
# alongside it rather than after it.

locals {
  function_principal_id = azurerm_user_assigned_identity.function.principal_id
}

# Read and write secret versions in every vault of the targets: data plane only.
#
# pat-rotator reads the latest version of a secret (getSecret), lists a secret's versions
# (readMetadata: "list or view the properties of a secret, but not its value"; there is no
# separate list action) and writes new versions (setSecret); it never updates, deletes,
# backs up, restores, recovers or purges. No built-in role grants set without delete: Key
# Vault Secrets User only reads, Secrets Officer holds every secrets data action
# (Microsoft.KeyVault/vaults/secrets/*). So the default (key_vault_role = "custom") is a
# role definition with exactly those three data actions, assignable only on the vaults of
# this deployment. Creating a role definition needs Microsoft.Authorization/
# roleDefinitions/write on its assignable scopes (Owner or User Access Administrator; Role
# Based Access Control Administrator does not have it): where the deployer may not,
# key_vault_role = "builtin" assigns Key Vault Secrets Officer instead (the fallback).
#
# Assignable scopes are the vaults themselves, not a resource group: Microsoft recommends
# resource groups or above ("Understand role definitions", AssignableScopes) to save
# custom roles (5000 per tenant); this deployment creates one, and a vault-level scope keeps
# it from being assignable anywhere else.
resource "azurerm_role_definition" "secrets_writer" {
  count = var.key_vault_role == "custom" ? 1 : 0

  name        = "pat-rotator secrets writer (${local.names.key_vault})"
  scope       = azurerm_key_vault.this.id
  description = "pat-rotator: read, list and write secret versions in the vaults of one deployment; no update, delete, backup, restore, recover or purge."

  permissions {
    data_actions = [
      "Microsoft.KeyVault/vaults/secrets/getSecret/action",
      "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
      "Microsoft.KeyVault/vaults/secrets/setSecret/action",
    ]
  }

  assignable_scopes = concat([azurerm_key_vault.this.id], [for k, v in local.existing_vaults : v.id])
}

# The vault created here. (The address keeps its historical name; the role is the custom
# one unless key_vault_role = "builtin".)
resource "azurerm_role_assignment" "key_vault_secrets_officer" {
  scope                = azurerm_key_vault.this.id
  role_definition_name = var.key_vault_role == "custom" ? null : "Key Vault Secrets Officer"
  role_definition_id   = var.key_vault_role == "custom" ? azurerm_role_definition.secrets_writer[0].role_definition_resource_id : null
  principal_id         = local.function_principal_id
  principal_type       = "ServicePrincipal"
  description          = "pat-rotator: read and write the secrets in this vault"
}

# Each existing vault a target names, with the same role.
resource "azurerm_role_assignment" "existing_key_vault" {
  for_each = local.existing_vaults

  scope                = each.value.id
  role_definition_name = var.key_vault_role == "custom" ? null : "Key Vault Secrets Officer"
  role_definition_id   = var.key_vault_role == "custom" ? azurerm_role_definition.secrets_writer[0].role_definition_resource_id : null
  principal_id         = local.function_principal_id
  principal_type       = "ServicePrincipal"
  description          = "pat-rotator: read and write its targets' secrets in this vault"
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

# targets_source = "blob": read the targets blob (PAT_TARGETS_BLOB), on its container only.
# The only data role on that container that this configuration grants.
resource "azurerm_role_assignment" "targets_blob_reader" {
  count = var.targets_source == "blob" ? 1 : 0

  scope                = azurerm_storage_container.targets[0].id
  role_definition_name = "Storage Blob Data Reader"
  principal_id         = local.function_principal_id
  principal_type       = "ServicePrincipal"
  description          = "pat-rotator: read the targets blob (PAT_TARGETS_BLOB)"
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
