# Storage for the Functions host (AzureWebJobsStorage: timer locks, host keys) and for
# the Flex Consumption deployment package. Only Entra ID access: shared keys, SAS and
# local users are off, and the Function App reaches it with its managed identity
# (identity-based connection, AzureWebJobsStorage__accountName).

resource "azurerm_storage_account" "host" {
  name                = local.names.storage
  resource_group_name = local.resource_group_name
  location            = var.location

  account_kind             = "StorageV2"
  account_tier             = "Standard"
  account_replication_type = "ZRS"

  https_traffic_only_enabled        = true
  min_tls_version                   = "TLS1_2"
  allow_nested_items_to_be_public   = false
  shared_access_key_enabled         = false
  default_to_oauth_authentication   = true
  local_user_enabled                = false
  cross_tenant_replication_enabled  = false
  infrastructure_encryption_enabled = true
  public_network_access_enabled     = true

  sas_policy {
    expiration_period = "00.01:00:00"
    expiration_action = "Log"
  }

  blob_properties {
    delete_retention_policy {
      days = 7
    }
    container_delete_retention_policy {
      days = 7
    }
  }

  tags = local.tags

  #checkov:skip=CKV_AZURE_35:The Flex Consumption app runs without VNet integration in this configuration and reaches its host storage over the public endpoint; access is Entra-ID-only (shared keys disabled). Add VNet integration and private endpoints to close the public endpoint.
  #checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35: the public endpoint is needed without VNet integration; anonymous and key-based access are disabled.
  #checkov:skip=CKV2_AZURE_33:Private endpoints need a VNet-integrated app; not part of this configuration (see CKV_AZURE_35).
  #checkov:skip=CKV2_AZURE_1:Host storage holds only timer leases, host keys and the deployment package; Microsoft-managed keys plus infrastructure (double) encryption are used instead of a customer-managed key.
  #checkov:skip=CKV_AZURE_33:Queue logging needs the classic storage-analytics queue_properties (a data-plane call with the account key, and shared keys are disabled); the Functions host uses no queues here, and blob access is logged by azurerm_monitor_diagnostic_setting.host_blob.
  #checkov:skip=CKV_AZURE_206:ZRS is used: the account holds only rebuildable host state (timer leases, keys, the deployment package), so geo-replication adds cost without value.
}

resource "azurerm_storage_container" "deployment" {
  name                  = "app-package"
  storage_account_id    = azurerm_storage_account.host.id
  container_access_type = "private"

  #checkov:skip=CKV2_AZURE_21:Blob reads are logged by azurerm_monitor_diagnostic_setting.host_blob (StorageRead to Log Analytics). The check wants azurerm_log_analytics_storage_insights, which needs the account key, and shared keys are disabled.
}
