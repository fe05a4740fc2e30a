# Databricks principals, in the one workspace the databricks provider serves
# (local.databricks_workspace_key, see main.tf; one provider configuration = one
# workspace):
#
#  * "workspace_service_principal" mode: the Function App's user-assigned identity is
#    added as an Azure-managed service principal (by its client id) to the group
#    "pat-rotator". No Azure role on the workspace resource is granted in this mode, and
#    its targets carry no workspace_resource_id (plain bearer-token calls).
#  * every target with client_id on that workspace: its app's service principal is added
#    as a plain member (no admin, no entitlements beyond the defaults) to the same group.
#
# Token usage: the group needs CAN_USE on the workspace's token permissions. By default
# this configuration does NOT manage that ACL: databricks_permissions for
# authorization = "tokens" is authoritative and would remove every other principal's
# CAN_USE, which revokes their tokens at once; the singular databricks_permission
# resource that adds one principal without replacing the ACL is in no released provider
# version (infra/README.md, "Databricks token permissions"). An operator adds the group
# to the ACL once (README), or sets manage_databricks_token_permissions = true and lists
# everyone else in databricks_token_usage_extra_acl.

locals {
  sp_mode = length(local.sp_workspace_keys) == 1

  # Federated targets whose workspace is the provider's: automated here. The others are
  # listed in the output databricks_manual_steps.
  automated_federated_targets = toset([
    for t in var.targets : t.name
    if contains(local.federated_target_names, t.name) && t.workspace == local.databricks_workspace_key
  ])
  manage_group = local.sp_mode || length(local.automated_federated_targets) > 0
}

resource "databricks_service_principal" "function" {
  count = local.sp_mode ? 1 : 0

  application_id = azurerm_user_assigned_identity.function.client_id
  display_name   = "pat-rotator (${local.names.identity})"
}

resource "databricks_service_principal" "target" {
  for_each = local.automated_federated_targets

  application_id = local.target_client_ids[each.key]
  display_name   = "pat-rotator target ${each.key}"
}

resource "databricks_group" "pat_rotator" {
  count        = local.manage_group ? 1 : 0
  display_name = "pat-rotator"
}

resource "databricks_group_member" "function" {
  count     = local.sp_mode ? 1 : 0
  group_id  = databricks_group.pat_rotator[0].id
  member_id = databricks_service_principal.function[0].id
}

resource "databricks_group_member" "target" {
  for_each  = local.automated_federated_targets
  group_id  = databricks_group.pat_rotator[0].id
  member_id = databricks_service_principal.target[each.key].id
}

# Earlier versions managed the tokens ACL by default as databricks_permissions.token_usage.
# Destroying a databricks_permissions resource is not harmless: the provider's Delete
# puts back an ACL of only the admins and the current user, which removes everyone
# else's CAN_USE and so revokes their tokens (pat-rotator's included). So that address
# is forgotten, never destroyed: the ACL stays exactly as it was.
removed {
  from = databricks_permissions.token_usage

  lifecycle {
    destroy = false
  }
}

# Opt-in, AUTHORITATIVE for the workspace's token usage: whoever is not listed here
# loses token access (and their tokens). Only with manage_databricks_token_permissions =
# true; keep everyone who needs tokens in var.databricks_token_usage_extra_acl. A tokens
# ACL cannot be set before the workspace has at least one token. prevent_destroy: going
# back to false (or destroying) would reset the ACL to the admins and revoke every other
# principal's tokens; to stop managing it, `terraform state rm` this resource first.
resource "databricks_permissions" "token_usage_authoritative" {
  count         = local.manage_group && var.manage_databricks_token_permissions ? 1 : 0
  authorization = "tokens"

  lifecycle {
    prevent_destroy = true
  }

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
