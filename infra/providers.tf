provider "azurerm" {
  subscription_id = var.subscription_id

  # The storage account has shared-key access disabled: anything the provider does on
  # the storage data plane must use Entra ID, not account keys.
  storage_use_azuread = true

  features {
    key_vault {
      # Purge protection is on: a destroyed vault stays soft-deleted for the retention
      # period and cannot be purged. Re-applying recovers it instead of failing on the name.
      purge_soft_delete_on_destroy    = false
      recover_soft_deleted_key_vaults = true
    }
    storage {
      # No queue_properties / static_website are used: skip data-plane reads of the
      # account (they would need shared keys or extra data roles for the deployer).
      data_plane_available = false
    }
    resource_group {
      prevent_deletion_if_contains_resources = true
    }
  }
}

provider "azuread" {}

# One workspace-level Databricks provider, for the (at most one) workspace whose access
# mode is "workspace_service_principal". It authenticates as the deploying identity
# (Azure CLI login or ARM_* environment) through the workspace's ARM resource id, so
# the deployer must be a workspace admin (the creator of a new workspace is). When no
# workspace uses that mode the provider is never called.
provider "databricks" {
  host                        = local.sp_workspace_url
  azure_workspace_resource_id = local.sp_workspace_resource_id
}
