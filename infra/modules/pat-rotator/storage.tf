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

# ---------------------------------------------------------------------------
# Targets from a blob (targets_source = "blob", contract section 2): PAT_TARGETS_BLOB
# ---------------------------------------------------------------------------
#
# Whoever can write this blob decides which vaults receive new credentials (within
# PAT_ALLOWED_VAULTS), so it lives in a storage account of its own rather than in the host
# storage, where the Function App identity is Storage Blob Data Owner of the whole account
# (the host needs that) and could rewrite its own targets. Here the identity gets Storage
# Blob Data Reader on the one container and nothing else; this configuration gives nobody
# a data role on it. The deploying identity writes the blob (azurerm_storage_blob, a data-
# plane call with Entra ID: storage_use_azuread) with a data role it must already hold
# (Storage Blob Data Contributor on the account or above). Versioning keeps every earlier
# target list, and every read and write is logged (diagnostic setting below).

resource "azurerm_storage_account" "targets" {
  count = var.targets_source == "blob" ? 1 : 0

  name                = local.names.targets_storage
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
    versioning_enabled = true
    delete_retention_policy {
      days = 30
    }
    container_delete_retention_policy {
      days = 30
    }
  }

  tags = local.tags

  #checkov:skip=CKV_AZURE_35:The Flex Consumption app runs without VNet integration in this configuration and reads its targets over the public endpoint; access is Entra-ID-only (shared keys disabled) and only the Function App identity holds a data role here.
  #checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35: the public endpoint is needed without VNet integration; anonymous and key-based access are disabled.
  #checkov:skip=CKV2_AZURE_33:Private endpoints need a VNet-integrated app; not part of this configuration (see CKV_AZURE_35).
  #checkov:skip=CKV2_AZURE_1:The account holds one JSON document with no secret (target names, workspace and vault URLs); Microsoft-managed keys plus infrastructure (double) encryption are used instead of a customer-managed key.
  #checkov:skip=CKV_AZURE_33:Queue logging needs the classic storage-analytics queue_properties (a data-plane call with the account key, and shared keys are disabled); the account has no queues, and blob access is logged by azurerm_monitor_diagnostic_setting.targets_blob.
  #checkov:skip=CKV_AZURE_206:ZRS is used: the blob is written by every apply from the Terraform configuration (and versioned), so geo-replication adds cost without value.
}

resource "azurerm_storage_container" "targets" {
  count = var.targets_source == "blob" ? 1 : 0

  name                  = "pat-targets"
  storage_account_id    = azurerm_storage_account.targets[0].id
  container_access_type = "private"

  #checkov:skip=CKV2_AZURE_21:Blob reads and writes are logged by azurerm_monitor_diagnostic_setting.targets_blob (StorageRead/StorageWrite to Log Analytics). The check wants azurerm_log_analytics_storage_insights, which needs the account key, and shared keys are disabled.
}

# The same JSON as PAT_TARGETS would hold (modules/targets).
resource "azurerm_storage_blob" "targets" {
  count = var.targets_source == "blob" ? 1 : 0

  name                 = "pat-targets.json"
  storage_container_id = azurerm_storage_container.targets[0].id
  type                 = "Block"
  content_type         = "application/json"
  source_content       = module.targets.pat_targets_json
}
