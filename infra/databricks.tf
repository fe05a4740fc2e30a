# Service-principal access mode (at most one workspace): the Function App identity is
# added to the workspace as an Azure-managed service principal, put in the group
# "pat-rotator", and that group gets CAN_USE on token usage. No Azure role on the
# workspace resource is granted in this mode, and targets in it carry no
# workspace_resource_id (plain bearer-token calls).

locals {
  sp_mode = length(local.sp_workspace_keys) == 1
}

# The identity's application (client) id: Databricks registers Azure service
# principals by application id, and the Function App only exposes the object id.
data "azuread_service_principal" "function" {
  count     = local.sp_mode ? 1 : 0
  object_id = local.function_principal_id
}

resource "databricks_service_principal" "function" {
  count = local.sp_mode ? 1 : 0

  application_id = data.azuread_service_principal.function[0].client_id
  display_name   = "pat-rotator (${azurerm_function_app_flex_consumption.this.name})"
}

resource "databricks_group" "pat_rotator" {
  count        = local.sp_mode ? 1 : 0
  display_name = "pat-rotator"
}

resource "databricks_group_member" "function" {
  count     = local.sp_mode ? 1 : 0
  group_id  = databricks_group.pat_rotator[0].id
  member_id = databricks_service_principal.function[0].id
}

# AUTHORITATIVE for the workspace's token usage: whoever is not listed here loses
# token access (and their tokens). Keep everyone who needs tokens in
# var.databricks_token_usage_extra_acl, or set manage_databricks_token_permissions =
# false and add the "pat-rotator" group to the ACL you already manage.
resource "databricks_permissions" "token_usage" {
  count         = local.sp_mode && var.manage_databricks_token_permissions ? 1 : 0
  authorization = "tokens"

  access_control {
    group_name       = databricks_group.pat_rotator[0].display_name
    permission_level = "CAN_USE"
  }

  dynamic "access_control" {
    for_each = var.databricks_token_usage_extra_acl
    content {
      group_name             = access_control.value.group_name
      user_name              = access_control.value.user_name
      service_principal_name = access_control.value.service_principal_name
      permission_level       = access_control.value.permission_level
    }
  }
}
