# Sample: a Databricks OAuth secret (contract section 9) kept rotated by pat-rotator, and a
# consumer that reads it from the vault and signs in with OAuth machine-to-machine.
#
#  - the module creates the workspace; pat-rotator's identity is a plain member there
#    plus, because an sp_oauth_secret target names this workspace, a workspace admin
#    (the service principal secrets API is admin-only; infra/README.md says what admin
#    grants);
#  - a Databricks-managed service principal "etl" (created here) is the principal the
#    consumer acts as; pat-rotator keeps one of its OAuth secrets in the vault
#    (value = the secret, contentType databricks-oauth-secret, tag databricks-client-id =
#    its application id);
#  - the consumer's identity (a user-assigned managed identity: give it to the VM,
#    container app or job that runs consumer.py) has Key Vault Secrets User on that one
#    secret and nothing else.
#
#   scripts/package.sh
#   cd infra/examples/oauth-consumer && terraform init && terraform apply -var 'name_prefix=...' ...
#   then, where the consumer identity runs: pip install -r requirements.txt && python consumer.py

terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 4.79" # same lines as the module (see infra/versions.tf)
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

provider "azurerm" {
  subscription_id     = var.subscription_id
  storage_use_azuread = true
  features {}
}

provider "azuread" {}

# The created workspace, as the deploying identity. From the output new_databricks_workspace,
# which depends on no target: the target below names a resource of this provider, so the
# output databricks_workspace (which follows the targets) would form a cycle.
provider "databricks" {
  host                        = try(module.pat_rotator.new_databricks_workspace.url, null)
  azure_workspace_resource_id = try(module.pat_rotator.new_databricks_workspace.resource_id, null)
}

# The principal the consumer acts as in Databricks: Databricks-managed (its application id
# is generated), with no entitlement beyond the defaults; grant it what the job needs.
resource "databricks_service_principal" "etl" {
  display_name = "etl (OAuth secret rotated by pat-rotator)"
}

module "pat_rotator" {
  source = "../../modules/pat-rotator"

  location                 = var.location
  name_prefix              = var.name_prefix
  resource_group_name      = var.resource_group_name
  new_databricks_workspace = { sku = "premium" }
  alert_email_addresses    = var.alert_email_addresses
  targets = [{
    name              = "etl"
    workspace         = "new"
    secret_name       = var.secret_name
    kind              = "sp_oauth_secret"
    service_principal = databricks_service_principal.etl.application_id
    lifetime_days     = 365
    renew_before_days = 60
  }]
}

# The consumer's identity: the VM / container app / job that runs consumer.py uses it.
resource "azurerm_user_assigned_identity" "consumer" {
  name                = "${var.name_prefix}-id-etl"
  resource_group_name = module.pat_rotator.resource_group_name
  location            = var.location
}

# Key Vault Secrets User on the one secret (its resource id), after pat-rotator wrote it.
resource "azurerm_role_assignment" "consumer_reads_secret" {
  scope                = "${module.pat_rotator.key_vault_id}/secrets/${var.secret_name}"
  role_definition_name = "Key Vault Secrets User"
  principal_id         = azurerm_user_assigned_identity.consumer.principal_id
  principal_type       = "ServicePrincipal"
  description          = "oauth-consumer sample: read the etl OAuth secret"

  depends_on = [module.pat_rotator.provisioned_targets]
}
