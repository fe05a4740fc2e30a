# Sample: pat-rotator plus an Azure Data Factory that
#  - links to the vault (Key Vault linked service, with the factory's managed identity),
#  - can call ProvisionPat (Azure Function linked service whose function key is read
#    from the vault, and a pipeline with an Azure Function activity that POSTs
#    {"target":"<name>"}),
#  - runs Databricks activities with the rotated PAT (Databricks linked service whose
#    access token is the target's secret in the vault).
#
# The factory acts in Databricks as its own principal (contract section 8): the target
# has create_app_registration = true, so the module creates an Entra app registration
# for it that trusts the Function App's identity through a federated credential, adds
# the app's service principal to the workspace as a plain member of the group
# "pat-rotator", and the PAT in the vault belongs to that service principal, not to
# pat-rotator's identity (and not to a workspace admin: a client_id target never uses
# the management headers).
#
# Access to the vaults: the deploying identity has no data-plane role on the PAT vault.
# The factory reads the PAT with Key Vault Secrets User on that one secret (scope = the
# secret's resource id). The function key lives in a separate small vault of this
# sample, where the deployer writes it and the factory reads that one secret.
#
# The Databricks linked service and the factory's access to the PAT secret depend on the
# module's provisioning step, which only finishes once the Function App has written a
# working PAT. The group "pat-rotator" gets token CAN_USE in the created workspace from
# the module (infra/README.md, "Databricks token permissions").
#
#   scripts/package.sh
#   cd infra/examples/data-factory && terraform init && terraform apply -var 'name_prefix=...' ...

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

# The module has no provider blocks: this configuration configures all three.
provider "azurerm" {
  subscription_id     = var.subscription_id
  storage_use_azuread = true
  features {}
}

provider "azuread" {}

# The workspace the module creates, where it adds the identity and the factory's app
# registration as plain members of the group "pat-rotator" (module output
# databricks_workspace).
provider "databricks" {
  host                        = try(module.pat_rotator.databricks_workspace.url, null)
  azure_workspace_resource_id = try(module.pat_rotator.databricks_workspace.resource_id, null)
}

module "pat_rotator" {
  source = "../../modules/pat-rotator"

  location            = var.location
  name_prefix         = var.name_prefix
  resource_group_name = var.resource_group_name
  # Least privilege (the default for a created workspace): pat-rotator's identity is a
  # plain member with token CAN_USE through the group "pat-rotator", not an admin.
  new_databricks_workspace = { sku = "premium" }
  alert_email_addresses    = var.alert_email_addresses
  targets = [{
    name                    = var.target_name
    workspace               = "new"
    secret_name             = var.secret_name
    create_app_registration = true
  }]
}

data "azurerm_client_config" "current" {}

locals {
  vault_id        = module.pat_rotator.key_vault_id
  pat_secret_name = module.pat_rotator.secret_names[var.target_name]
  sample_suffix   = substr(sha256(local.vault_id), 0, 6)
}

# Waits for the module's provisioning step: the PAT secret exists and works.
resource "terraform_data" "pat_ready" {
  input = module.pat_rotator.provisioned_targets
}

resource "azurerm_data_factory" "this" {
  name                   = "${var.name_prefix}-adf-${local.sample_suffix}"
  resource_group_name    = module.pat_rotator.resource_group_name
  location               = var.location
  public_network_enabled = true

  identity {
    type = "SystemAssigned"
  }

  #checkov:skip=CKV_AZURE_103:A sample factory; connect it to your own Git repository for source control.
  #checkov:skip=CKV_AZURE_104:The sample factory is authored from the public ADF studio; use a managed VNet and private endpoints for production.
  #checkov:skip=CKV2_AZURE_15:Customer-managed keys need a user-assigned identity and a key this sample does not create; Microsoft-managed encryption is used.
}

# ---------------------------------------------------------------------------
# The function key in this sample's own vault (for the Azure Function linked service)
# ---------------------------------------------------------------------------

# Storing the function key is this sample's own need, so it gets its own vault: the
# deploying identity is Key Vault Secrets Officer there, and has no data-plane role on
# pat-rotator's PAT vault. Drop this vault and the secret below if you store the key
# another way.
resource "azurerm_key_vault" "sample" {
  name                = "${var.name_prefix}adf${local.sample_suffix}"
  resource_group_name = module.pat_rotator.resource_group_name
  location            = var.location
  tenant_id           = data.azurerm_client_config.current.tenant_id
  sku_name            = "standard"

  rbac_authorization_enabled    = true
  purge_protection_enabled      = true
  soft_delete_retention_days    = 7
  public_network_access_enabled = true

  network_acls {
    bypass         = "AzureServices"
    default_action = "Allow"
  }

  #checkov:skip=CKV_AZURE_109:The deploying machine and the sample factory (no managed VNet) reach this vault over its public endpoint; every data-plane call needs an Entra ID token and an RBAC role on this vault.
  #checkov:skip=CKV_AZURE_189:Same reason as CKV_AZURE_109: a sample without private networking; access is RBAC-only.
  #checkov:skip=CKV2_AZURE_32:Private endpoints need a network this sample does not create (see CKV_AZURE_109).
}

resource "azurerm_role_assignment" "deployer_writes_function_key" {
  scope                = azurerm_key_vault.sample.id
  role_definition_name = "Key Vault Secrets Officer"
  principal_id         = data.azurerm_client_config.current.object_id
  description          = "data-factory sample: store the pat-rotator function key in the sample vault"
}

# New role assignments take minutes to apply: wait (bounded) until the deploying
# identity can use the vault's data plane before writing the secret.
resource "terraform_data" "deployer_vault_access" {
  triggers_replace = [azurerm_role_assignment.deployer_writes_function_key.id]

  provisioner "local-exec" {
    command     = "for i in $(seq 1 40); do az keyvault secret list --vault-name \"$VAULT\" --maxresults 1 --output none 2>/dev/null && exit 0; sleep 15; done; echo 'Key Vault data-plane access did not propagate within 10 minutes' >&2; exit 1"
    interpreter = ["bash", "-c"]
    environment = {
      VAULT = azurerm_key_vault.sample.name
    }
  }
}

resource "azurerm_key_vault_secret" "function_key" {
  name         = "pat-rotator-function-key"
  value        = module.pat_rotator.function_key
  key_vault_id = azurerm_key_vault.sample.id
  content_type = "azure-functions-key"

  depends_on = [terraform_data.deployer_vault_access]

  #checkov:skip=CKV_AZURE_41:A Functions host key has no expiry of its own; it is replaced here whenever the key changes.
}

# The factory reads exactly two secrets, each with a role scoped to that one secret
# (the secret's resource id): the function key and the PAT.
resource "azurerm_role_assignment" "factory_reads_function_key" {
  scope                = azurerm_key_vault_secret.function_key.resource_versionless_id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = azurerm_data_factory.this.identity[0].principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "factory_reads_pat" {
  scope                = "${local.vault_id}/secrets/${local.pat_secret_name}"
  role_definition_name = "Key Vault Secrets User"
  principal_id         = azurerm_data_factory.this.identity[0].principal_id
  principal_type       = "ServicePrincipal"

  # The secret exists only once ProvisionPat has run.
  depends_on = [terraform_data.pat_ready]
}

# ---------------------------------------------------------------------------
# Linked services
# ---------------------------------------------------------------------------

resource "azurerm_data_factory_linked_service_key_vault" "vault" {
  name            = "PatRotatorKeyVault"
  data_factory_id = azurerm_data_factory.this.id
  key_vault_id    = local.vault_id
}

resource "azurerm_data_factory_linked_service_key_vault" "sample" {
  name            = "SampleKeyVault"
  data_factory_id = azurerm_data_factory.this.id
  key_vault_id    = azurerm_key_vault.sample.id
}

resource "azurerm_data_factory_linked_service_azure_function" "rotator" {
  name            = "PatRotatorFunction"
  data_factory_id = azurerm_data_factory.this.id
  url             = module.pat_rotator.function_app_url

  key_vault_key {
    linked_service_name = azurerm_data_factory_linked_service_key_vault.sample.name
    secret_name         = azurerm_key_vault_secret.function_key.name
  }
}

resource "azurerm_data_factory_linked_service_azure_databricks" "workspace" {
  name            = "DatabricksWithRotatedPat"
  data_factory_id = azurerm_data_factory.this.id
  adb_domain      = module.pat_rotator.databricks_workspace_urls["new"]

  # The access token is the rotated PAT, read from the vault at run time: every
  # rotation is picked up without touching the factory.
  key_vault_password {
    linked_service_name = azurerm_data_factory_linked_service_key_vault.vault.name
    secret_name         = local.pat_secret_name
  }

  new_cluster_config {
    cluster_version       = var.databricks_cluster_version
    node_type             = var.databricks_node_type
    min_number_of_workers = 1
    max_number_of_workers = 2
  }

  depends_on = [terraform_data.pat_ready, azurerm_role_assignment.factory_reads_pat]
}

# ---------------------------------------------------------------------------
# Pipeline: provision (or re-check) the PAT on demand
# ---------------------------------------------------------------------------

resource "azurerm_data_factory_pipeline" "provision_pat" {
  name            = "ProvisionDatabricksPat"
  data_factory_id = azurerm_data_factory.this.id
  description     = "Calls pat-rotator's ProvisionPat for one target: creates the PAT if missing, replaces it if revoked, otherwise leaves it unchanged."

  parameters = {
    target = var.target_name
  }

  activities_json = jsonencode([
    {
      name = "ProvisionPat"
      type = "AzureFunctionActivity"
      linkedServiceName = {
        referenceName = azurerm_data_factory_linked_service_azure_function.rotator.name
        type          = "LinkedServiceReference"
      }
      policy = {
        timeout                = "0.00:05:00"
        retry                  = 3
        retryIntervalInSeconds = 60
        secureInput            = false
        secureOutput           = false
      }
      typeProperties = {
        functionName = "ProvisionPat"
        method       = "POST"
        headers      = { "Content-Type" = "application/json" }
        body = {
          type  = "Expression"
          value = "@json(concat('{\"target\":\"', pipeline().parameters.target, '\"}'))"
        }
      }
    },
  ])

  depends_on = [azurerm_role_assignment.factory_reads_function_key]
}
