data "azurerm_client_config" "current" {}

# ---------------------------------------------------------------------------
# Resource group (new or existing)
# ---------------------------------------------------------------------------

resource "azurerm_resource_group" "this" {
  count    = var.create_resource_group ? 1 : 0
  name     = var.resource_group_name
  location = var.location
  tags     = local.tags
}

data "azurerm_resource_group" "existing" {
  count = var.create_resource_group ? 0 : 1
  name  = var.resource_group_name
}

locals {
  resource_group_name = var.create_resource_group ? azurerm_resource_group.this[0].name : data.azurerm_resource_group.existing[0].name

  # Deterministic suffix: the same inputs give the same names on every machine.
  suffix = coalesce(var.name_suffix, substr(sha256("${data.azurerm_client_config.current.subscription_id}/${lower(var.resource_group_name)}/${var.name_prefix}"), 0, 6))

  names = {
    storage         = "${var.name_prefix}st${local.suffix}"   # 3-24, [a-z0-9]
    targets_storage = "${var.name_prefix}tg${local.suffix}"   # 3-24, [a-z0-9]
    key_vault       = "${var.name_prefix}-kv-${local.suffix}" # 3-24
    function_app    = "${var.name_prefix}-func-${local.suffix}"
    plan            = "${var.name_prefix}-plan-${local.suffix}"
    insights        = "${var.name_prefix}-appi-${local.suffix}"
    logs            = "${var.name_prefix}-log-${local.suffix}"
    workspace       = "${var.name_prefix}-dbw-${local.suffix}"
    identity        = "${var.name_prefix}-id-${local.suffix}"
    action_group    = "${var.name_prefix}-ag-${local.suffix}"
    workbook        = "${var.name_prefix}-wb-${local.suffix}"
  }

  tags = merge(var.tags, { "managed-by" = "terraform", "application" = "pat-rotator" })

  package_path = coalesce(var.package_path, abspath("${path.module}/../../../dist/pat-rotator.zip"))
}

# ---------------------------------------------------------------------------
# Databricks workspaces: optionally a new one, plus existing ones by resource id
# ---------------------------------------------------------------------------

resource "azurerm_databricks_workspace" "new" {
  count = var.new_databricks_workspace == null ? 0 : 1

  name                              = coalesce(var.new_databricks_workspace.name, local.names.workspace)
  resource_group_name               = local.resource_group_name
  location                          = var.location
  sku                               = var.new_databricks_workspace.sku
  managed_resource_group_name       = coalesce(var.new_databricks_workspace.managed_resource_group_name, "${local.resource_group_name}-dbw-managed")
  infrastructure_encryption_enabled = var.new_databricks_workspace.sku == "premium"
  tags                              = local.tags

  #checkov:skip=CKV_AZURE_158:The workspace must be reachable from the Flex Consumption Function App and from users without a private-link network; restrict it with Private Link / IP access lists in your own network setup.
  #checkov:skip=CKV2_AZURE_48:Customer-managed keys for managed disks need a key vault key and disk encryption set this sample does not create; the workspace uses platform-managed encryption (plus infrastructure encryption on Premium).
}

data "azurerm_databricks_workspace" "existing" {
  for_each = { for k, w in var.existing_databricks_workspaces : k => w if w.workspace_url == null }

  # /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Databricks/workspaces/{name}
  name                = element(split("/", each.value.resource_id), 8)
  resource_group_name = element(split("/", each.value.resource_id), 4)
}

locals {
  workspaces = merge(
    {
      for w in azurerm_databricks_workspace.new : "new" => {
        workspace_url = "https://${w.workspace_url}"
        resource_id   = w.id
        access_mode   = var.new_databricks_workspace.access_mode
      }
    },
    {
      for k, w in var.existing_databricks_workspaces : k => {
        workspace_url = w.workspace_url != null ? w.workspace_url : "https://${data.azurerm_databricks_workspace.existing[k].workspace_url}"
        resource_id   = w.resource_id
        access_mode   = w.access_mode
      }
    },
  )

  # Who may do what where: modules/access (pure data, tested offline with `terraform
  # test`). Every decision depends on variables only, so it is known at plan time.
  contributor_workspace_keys = module.access.contributor_workspace_keys
  sp_workspace_keys          = module.access.sp_workspace_keys
  federated_target_names     = module.access.federated_target_names
  databricks_workspace_key   = module.access.databricks_workspace_key
  sp_workspace_url           = local.databricks_workspace_key == null ? null : local.workspaces[local.databricks_workspace_key].workspace_url
  sp_workspace_resource_id   = local.databricks_workspace_key == null ? null : local.workspaces[local.databricks_workspace_key].resource_id
}

module "access" {
  source = "../access"

  workspace_modes = merge(
    var.new_databricks_workspace == null ? {} : { new = var.new_databricks_workspace.access_mode },
    { for k, w in var.existing_databricks_workspaces : k => w.access_mode },
  )
  new_workspace_created = var.new_databricks_workspace != null
  targets = [for t in var.targets : {
    name            = t.name
    workspace       = t.workspace
    kind            = t.kind
    federated       = t.client_id != null || t.create_app_registration
    keep_while_used = coalesce(t.keep_while_used, false)
  }]
  manage_databricks_token_permissions = var.manage_databricks_token_permissions
}

# ---------------------------------------------------------------------------
# PAT_TARGETS: generated from var.targets (validated in the module, contract §2)
# ---------------------------------------------------------------------------

module "targets" {
  source = "../targets"

  # Exactly the module's target fields; client_id is the existing one, or the
  # application (client) id of the app registration created for the target (entra.tf).
  targets = [for t in var.targets : {
    name               = t.name
    workspace          = t.workspace
    secret_name        = t.secret_name
    lifetime_days      = t.lifetime_days
    renew_before_days  = t.renew_before_days
    revoke_grace_hours = t.revoke_grace_hours
    scopes             = t.scopes
    autoscope          = t.autoscope
    client_id          = t.create_app_registration ? azuread_application_registration.target[t.name].client_id : t.client_id
    federated          = t.client_id != null || t.create_app_registration
    kind               = t.kind
    service_principal  = t.service_principal
    key_vault          = t.key_vault
    keep_while_used    = t.keep_while_used
  }]
  workspaces              = local.workspaces
  key_vault_url           = azurerm_key_vault.this.vault_uri
  existing_key_vault_urls = { for k, v in local.existing_vaults : k => v.url }
}
