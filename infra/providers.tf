# Provider configurations: only here, in the root, never in modules/pat-rotator (a module
# with provider blocks cannot be called with count, for_each or depends_on). Each cloud
# setting follows var.azure_cloud ("public", "usgovernment", "china"): azurerm's and
# azuread's `environment` and the databricks provider's `azure_environment` accept these
# same three names.

provider "azurerm" {
  subscription_id = var.subscription_id
  environment     = var.azure_cloud

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

provider "azuread" {
  environment = var.azure_cloud
}

# One workspace-level Databricks provider, for the one workspace the module manages
# principals in (its output databricks_workspace: the workspace in
# "workspace_service_principal" mode, by default the one it creates). It authenticates as
# the deploying identity (Azure CLI login or ARM_* environment) through the workspace's
# ARM resource id, so the deployer must be a workspace admin (the creator of a new
# workspace is). When the module manages no Databricks resource the output is null and
# the provider is never called.
provider "databricks" {
  host                        = try(module.pat_rotator.databricks_workspace.url, null)
  azure_workspace_resource_id = try(module.pat_rotator.databricks_workspace.resource_id, null)
  azure_environment           = var.azure_cloud
}
