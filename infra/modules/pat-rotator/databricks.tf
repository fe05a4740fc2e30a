# Databricks principals, in the one workspace the databricks provider serves
# (local.databricks_workspace_key, see main.tf; one provider configuration = one
# workspace; the caller configures that provider from the output databricks_workspace):
#
#  * "workspace_service_principal" mode (the default for a workspace created here): the
#    Function App's user-assigned identity is added as an Azure-managed service principal
#    (by its client id) to the group "pat-rotator". No Azure role on the workspace
#    resource is granted in this mode, and its targets carry no workspace_resource_id
#    (plain bearer-token calls): the identity is a plain member, not an admin.
#  * only where a target of kind "sp_oauth_secret" (contract section 9) names that
#    workspace, the identity is also a member of the workspace's "admins" group: the
#    service principal secrets API is for workspace admins only.
#  * every target with client_id on that workspace: its app's service principal is added
#    as a plain member (no admin, no entitlements beyond the defaults) to the same group.
#
# Token usage: the group needs CAN_USE on the workspace's token permissions.
# databricks_permissions for authorization = "tokens" is AUTHORITATIVE: it removes every
# principal it does not list, and removing CAN_USE revokes that principal's tokens at
# once. So it is managed here only
#  * in a workspace this configuration creates, where a PAT target needs it: a new
#    workspace's tokens ACL grants CAN_USE to no non-admin principal (Microsoft Learn,
#    "Monitor and manage personal access tokens": "By default, no non-admin workspace
#    users have the CAN USE permission"), and admins keep CAN_MANAGE whatever the ACL says,
#    so replacing it revokes nobody. From then on this configuration owns that ACL:
#    grant token access there through databricks_token_usage_extra_acl, not by hand;
#  * in an existing workspace only with manage_databricks_token_permissions = true
#    (opt-in; list everyone who must keep token access in databricks_token_usage_extra_acl).
# Otherwise, in an existing workspace, the group's CAN_USE is ADDED to the ACL, nothing
# removed: terraform_data.grant_token_use (below) sends the Permissions API's PATCH as the
# deploying identity, a workspace admin there. The singular databricks_permission resource
# that would do the same is in no released provider version (infra/README.md,
# "Databricks token permissions").

locals {
  sp_mode                     = module.access.sp_mode
  automated_federated_targets = module.access.automated_federated_targets
  manage_group                = module.access.manage_group
  manage_token_acl            = module.access.manage_token_acl
  identity_is_admin           = module.access.identity_is_admin
}

resource "databricks_service_principal" "function" {
  count = local.sp_mode ? 1 : 0

  application_id = azurerm_user_assigned_identity.function.client_id
  display_name   = "pat-rotator (${local.names.identity})"

  # A workspace that ran in azure_contributor mode before already holds this principal
  # (the management headers add it on first use, as an admin): adopt it instead of
  # failing on "already exists". Its admin membership is NOT removed by adopting it;
  # infra/README.md ("Switching a workspace to workspace_service_principal") says how.
  force = true
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

# Contract section 9: the service principal secrets API is admin-only. Only in a
# workspace where an OAuth-secret target exists; never for a target's app principal.
data "databricks_group" "admins" {
  count        = local.identity_is_admin ? 1 : 0
  display_name = "admins"
}

resource "databricks_group_member" "function_admin" {
  count     = local.identity_is_admin ? 1 : 0
  group_id  = data.databricks_group.admins[0].id
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

# A tokens ACL cannot be set before the workspace holds at least one token (the provider's
# databricks_permissions docs, "Token usage"; databricks/terraform-provider-databricks#1122:
# "tokens tokens does not exist"). A new workspace holds none, so the deploying identity
# (its creator, an admin) creates one short-lived token first: lifetime one day, comment
# "pat-rotator bootstrap ...". Its value is discarded by the script (never printed, never
# in the state); it expires by itself. Once ProvisionPat has run, pat-rotator's own tokens
# keep the workspace from being token-less. Runs once per workspace.
resource "terraform_data" "tokens_acl_bootstrap" {
  count = module.access.bootstrap_token_acl ? 1 : 0

  triggers_replace = [local.workspaces["new"].resource_id]

  provisioner "local-exec" {
    command = "bash \"${path.module}/../../scripts/bootstrap-token-acl.sh\""
    environment = {
      BOOTSTRAP_WORKSPACE_URL         = local.workspaces["new"].workspace_url
      BOOTSTRAP_WORKSPACE_RESOURCE_ID = local.workspaces["new"].resource_id
      BOOTSTRAP_MANAGEMENT_RESOURCE   = local.cloud.management_resource
    }
  }
}

# AUTHORITATIVE for the workspace's token usage: whoever is not listed here loses token
# access (and their tokens). Managed by default only in a workspace created here (see the
# top of this file); elsewhere only with manage_databricks_token_permissions = true. Keep
# everyone who needs tokens in var.databricks_token_usage_extra_acl. prevent_destroy:
# destroying it would reset the ACL to the admins and revoke every other principal's
# tokens; to stop managing it, `terraform state rm` this resource first.
resource "databricks_permissions" "token_usage_authoritative" {
  count         = local.manage_token_acl ? 1 : 0
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

  depends_on = [terraform_data.tokens_acl_bootstrap]
}

# An existing workspace in workspace_service_principal mode (or the workspace of a client_id
# target): the group pat-rotator gets token CAN_USE by one added ACL entry
# (PATCH /api/2.0/permissions/authorization/tokens, which adds entries, unlike PUT), so no
# one else's token access changes and no Azure role on the workspace is needed. Runs as the
# Azure CLI login, which must be a workspace admin there (the databricks provider runs as
# the same identity to add the principals). Once per workspace and group; re-running is
# harmless (the entry is added again).
resource "terraform_data" "grant_token_use" {
  count = module.access.grant_token_use ? 1 : 0

  triggers_replace = [local.sp_workspace_resource_id, databricks_group.pat_rotator[0].id]

  provisioner "local-exec" {
    command = "bash \"${path.module}/../../scripts/grant-token-use.sh\""
    environment = {
      GRANT_WORKSPACE_URL = local.sp_workspace_url
      GRANT_GROUP_NAME    = databricks_group.pat_rotator[0].display_name
    }
  }

  depends_on = [
    databricks_group_member.function,
    databricks_group_member.target,
  ]
}
