# Version pins, and why:
#
# - Terraform >= 1.9: the targets validation (modules/targets) cross-checks two input
#   variables and builds its error messages from the offending values; both need 1.9.
#   terraform_data (built in, no null provider) needs >= 1.4.
# - azurerm ~> 4.42 (>= 4.42, < 5.0): 4.x is the line this configuration is written and
#   checked for. 4.21 added azurerm_function_app_flex_consumption with
#   runtime_name = "custom" (custom handlers on Flex Consumption); 4.42 added
#   rbac_authorization_enabled on azurerm_key_vault (enable_rbac_authorization is
#   deprecated and gone in 5.0); features.storage.data_plane_available exists since 4.9.
#   5.x removes/renames arguments used here, so the upper bound is deliberate.
# - azuread ~> 3.0: only read, to turn the Function App identity's object id into its
#   application (client) id when a workspace uses the service-principal access mode.
# - databricks ~> 1.50: databricks_service_principal (Azure-managed, by application_id),
#   databricks_group_member and databricks_permissions with authorization = "tokens".
#
# Commit the .terraform.lock.hcl that `terraform init` writes in your environment to
# pin exact provider builds (it cannot be generated offline in this repository's CI).
terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 4.42"
    }
    azuread = {
      source  = "hashicorp/azuread"
      version = "~> 3.0"
    }
    databricks = {
      source  = "databricks/databricks"
      version = "~> 1.50"
    }
  }
}
