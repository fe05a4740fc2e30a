resource "azurerm_log_analytics_workspace" "this" {
  name                = local.names.logs
  resource_group_name = local.resource_group_name
  location            = var.location
  sku                 = "PerGB2018"
  retention_in_days   = var.log_retention_days
  tags                = local.tags
}

# Application Insights with local (instrumentation-key) authentication disabled: the
# Function App sends telemetry with its managed identity
# (APPLICATIONINSIGHTS_AUTHENTICATION_STRING = "Authorization=AAD" and the
# Monitoring Metrics Publisher role), so the connection string is no credential.
resource "azurerm_application_insights" "this" {
  name                         = local.names.insights
  resource_group_name          = local.resource_group_name
  location                     = var.location
  application_type             = "other"
  workspace_id                 = azurerm_log_analytics_workspace.this.id
  local_authentication_enabled = false
  tags                         = local.tags
}

# Audit trail: who read or changed a PAT secret (Key Vault AuditEvent), and every
# read/write/delete on the host storage (host keys, deployment package).
resource "azurerm_monitor_diagnostic_setting" "key_vault" {
  name                       = "pat-rotator-audit"
  target_resource_id         = azurerm_key_vault.this.id
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id

  enabled_log {
    category_group = "audit"
  }
}

resource "azurerm_monitor_diagnostic_setting" "host_blob" {
  name                       = "pat-rotator-audit"
  target_resource_id         = "${azurerm_storage_account.host.id}/blobServices/default"
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id

  enabled_log {
    category = "StorageRead"
  }
  enabled_log {
    category = "StorageWrite"
  }
  enabled_log {
    category = "StorageDelete"
  }
}
