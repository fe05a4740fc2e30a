# Version pins, and why:
#
# - Terraform >= 1.9: the targets validation (modules/targets) cross-checks two input
#   variables and builds its error messages from the offending values; both need 1.9.
#   terraform_data (built in, no null provider) needs >= 1.4.
# - azurerm ~> 4.79 (>= 4.79, < 5.0): 4.79.0 is the schema scripts/check-infra.sh checks
#   every resource, argument and reference against (infra/tests/tfschema.py).
#   Below it the configuration breaks: local_authentication_enabled on
#   azurerm_application_insights first appears in 4.78 (older versions have only
#   local_authentication_disabled), and before 4.58 maximum_instance_count below 40 is
#   rejected. Older facts still hold: 4.21 added azurerm_function_app_flex_consumption
#   with runtime_name = "custom", 4.42 rbac_authorization_enabled on azurerm_key_vault.
#   4.81 (first to manage Key Vault through API 2026-02-01, azurerm #32627) is allowed
#   by this constraint but not required: nothing here needs that API, and its schema is
#   not the one checked (see infra/README.md, "Provider versions"). 5.x removes/renames
#   arguments used here, so the upper bound is deliberate.
# - azuread ~> 3.7: schema 3.7.0 is checked. Creates, per target that asks for it, the
#   app registration, its service principal and the federated identity credential
#   that trusts the Function App's user-assigned identity (contract section 8).
# - databricks ~> 1.53: databricks_service_principal (Azure-managed, by
#   application_id), databricks_group(_member), and databricks_permissions with
#   authorization = "tokens", whose ACL may carry CAN_MANAGE entries only from 1.53.
#   (No singular databricks_permission resource is used: it is in no released
#   provider version we could find, see infra/README.md.)
#
# Commit the .terraform.lock.hcl that `terraform init` writes in your environment to
# pin exact provider builds (it cannot be generated offline in this repository's CI).
terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 4.79"
    }
    azuread = {
      source  = "hashicorp/azuread"
      version = "~> 3.7"
    }
    databricks = {
      source  = "databricks/databricks"
      version = "~> 1.53"
    }
  }
}
