# Code deployment and first provisioning, so that one `terraform apply` from empty
# leaves a working PAT in Key Vault for every target (issue 6).
#
#   azurerm_function_app_flex_consumption.this
#     -> terraform_data.deploy_package      (scripts/deploy-package.sh: one deploy of the zip)
#     -> data.azurerm_function_app_host_keys.this
#     -> terraform_data.provision["<target>"] (scripts/provision.sh: POST ProvisionPat)
#
# The PAT itself is created by the deployed Function App with its own identity: the
# deploying identity gets no Key Vault data-plane role and no Databricks token.

# One deploy of the package (az functionapp deployment source config-zip, which uses
# the Flex Consumption "one deploy" endpoint). azurerm's zip_deploy_file is not used:
# in azurerm 4.x it posts to /api/zipdeploy, which Flex Consumption does not serve
# (hashicorp/terraform-provider-azurerm#29630). The script also removes the key-less
# AzureWebJobsStorage / DEPLOYMENT_STORAGE_CONNECTION_STRING settings that azurerm
# writes on every create/update of a Flex app even with identity-based storage
# (hashicorp/terraform-provider-azurerm#29149, #29693), which is why it re-runs
# whenever the Function App changes.
resource "terraform_data" "deploy_package" {
  count = var.deploy_package ? 1 : 0

  triggers_replace = {
    package_sha256 = fileexists(local.package_path) ? filesha256(local.package_path) : "missing"
  }

  provisioner "local-exec" {
    command = "bash \"${path.module}/../../scripts/deploy-package.sh\""
    environment = {
      DEPLOY_SUBSCRIPTION_ID = data.azurerm_client_config.current.subscription_id
      DEPLOY_RESOURCE_GROUP  = local.resource_group_name
      DEPLOY_FUNCTION_APP    = azurerm_function_app_flex_consumption.this.name
      DEPLOY_PACKAGE_PATH    = local.package_path
    }
  }

  lifecycle {
    replace_triggered_by = [azurerm_function_app_flex_consumption.this]

    precondition {
      condition     = fileexists(local.package_path)
      error_message = "No deployment package at ${local.package_path}: run scripts/package.sh first (or set package_path, or deploy_package = false)."
    }
  }

  # The app reads its package from the deployment container with its identity.
  depends_on = [azurerm_role_assignment.storage_blob_data_owner]
}

# Host keys of the deployed app. Read after the deployment (depends_on defers the read
# to apply time whenever the deployment changes).
data "azurerm_function_app_host_keys" "this" {
  count = var.deploy_package ? 1 : 0

  name                = azurerm_function_app_flex_consumption.this.name
  resource_group_name = local.resource_group_name

  depends_on = [terraform_data.deploy_package]
}

# One ProvisionPat call per target. Re-created (so called again) only when that
# target's settings change, the Function App or the vault is replaced, or the app's
# identity changes (a new identity does not find the old identity's token in its token
# list, so the call replaces the secret in the same apply instead of at the next timer
# run). An apply
# with no change calls nothing; when it does call, ProvisionPat without force answers
# "unchanged" for a secret that is already good, so nothing is rotated needlessly.
resource "terraform_data" "provision" {
  for_each = var.provision_on_apply && var.deploy_package ? toset([for t in var.targets : t.name]) : toset([])

  triggers_replace = {
    target_settings = module.targets.settings_hash[each.key]
    function_app_id = azurerm_function_app_flex_consumption.this.id
    key_vault_id    = local.vaults[local.target_key_vault[each.key]].id
    identity        = azurerm_user_assigned_identity.function.principal_id
  }

  provisioner "local-exec" {
    command = "bash \"${path.module}/../../scripts/provision.sh\""
    environment = {
      PROVISION_URL             = "https://${azurerm_function_app_flex_consumption.this.default_hostname}/api/ProvisionPat"
      PROVISION_TARGET          = each.key
      PROVISION_TIMEOUT_SECONDS = tostring(var.provision_timeout_seconds)
      # The function key reaches the script only through its environment: never on a
      # command line, never printed (the script redacts it from anything it prints).
      # nonsensitive() here only keeps Terraform from suppressing the script's own
      # key-free progress and error messages; Terraform does not print environments.
      PROVISION_FUNCTION_KEY = nonsensitive(data.azurerm_function_app_host_keys.this[0].default_function_key)
    }
  }

  # ProvisionPat needs: the code deployed, the vault role on every vault, the workspace
  # access of either mode, the host storage role, and with targets_source = "blob" the
  # blob and the right to read it. All of them, not only some.
  depends_on = [
    terraform_data.deploy_package,
    azurerm_role_assignment.key_vault_secrets_officer,
    azurerm_role_assignment.existing_key_vault,
    azurerm_storage_blob.targets,
    azurerm_role_assignment.targets_blob_reader,
    terraform_data.grant_token_use,
    azurerm_role_assignment.storage_blob_data_owner,
    azurerm_role_assignment.storage_table_data_contributor,
    azurerm_role_assignment.workspace_contributor,
    databricks_group_member.function,
    databricks_group_member.function_admin,
    databricks_group_member.target,
    databricks_permissions.token_usage_authoritative,
    azuread_application_federated_identity_credential.target,
  ]
}
