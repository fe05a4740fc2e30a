# Who may do what in which Databricks workspace: the access decisions of the pat-rotator
# module as pure data (no provider), so `terraform test` in this folder checks them
# offline. Every input is known at plan time (access modes, target kinds and names come
# from variables), so every decision is too, and count / for_each can use them.

terraform {
  required_version = ">= 1.9.0, < 2.0.0"
}

locals {
  contributor_workspace_keys = toset([for k, m in var.workspace_modes : k if m == "azure_contributor"])
  sp_workspace_keys          = sort([for k, m in var.workspace_modes : k if m == "workspace_service_principal"])

  # Targets whose PAT belongs to an app registration (contract section 8).
  federated_target_names = [for t in var.targets : t.name if t.federated]

  # The one workspace the databricks provider serves (one provider configuration = one
  # workspace): the workspace in "workspace_service_principal" mode if there is one,
  # else the workspace of the first federated target.
  databricks_workspace_key = try(coalesce(
    try(local.sp_workspace_keys[0], null),
    try([for t in var.targets : t.workspace if t.federated][0], null),
  ), null)

  sp_mode = length(local.sp_workspace_keys) == 1

  # Federated targets whose workspace is the provider's: their app's service principal is
  # added there. The others are listed in the output databricks_manual_steps.
  automated_federated_targets = toset([for t in var.targets : t.name if t.federated && t.workspace == local.databricks_workspace_key])

  manage_group = local.sp_mode || length(local.automated_federated_targets) > 0

  provider_workspace_is_new = var.new_workspace_created && local.databricks_workspace_key == "new"

  pat_workspace_keys   = toset([for t in var.targets : t.workspace if t.kind == "pat"])
  oauth_workspace_keys = toset([for t in var.targets : t.workspace if t.kind == "sp_oauth_secret"])
  # Contract section 10, "Usage": the Token Management lookup of keep_while_used targets is
  # admin-only (such targets never have client_id, modules/targets refuses that).
  usage_workspace_keys = toset([for t in var.targets : t.workspace if t.keep_while_used])

  # The AUTHORITATIVE tokens ACL: in a workspace created here when a PAT target there
  # needs token CAN_USE (its ACL grants CAN_USE to no non-admin principal yet, so
  # replacing it revokes nobody), elsewhere only on the operator's explicit opt-in.
  manage_token_acl = local.manage_group && (
    var.manage_databricks_token_permissions ||
    (local.provider_workspace_is_new && contains(local.pat_workspace_keys, "new"))
  )

  # The group's token CAN_USE without replacing the ACL: in an existing workspace the
  # databricks provider serves, when a PAT target there (the identity's own, or a
  # client_id target's app in the group) needs it and the ACL is not managed here.
  # Granted by scripts/grant-token-use.sh (Permissions API PATCH, which adds entries)
  # as the deploying identity, a workspace admin there.
  grant_token_use = (
    local.manage_group && !local.manage_token_acl && !local.provider_workspace_is_new &&
    contains(local.pat_workspace_keys, coalesce(local.databricks_workspace_key, "-"))
  )

  # Workspace admin for the identity only where an OAuth-secret target (contract section
  # 9) or a keep_while_used target (section 10) needs it, in service-principal mode; in
  # azure_contributor mode the management headers already make it an admin.
  identity_is_admin = local.sp_mode && contains(setunion(local.oauth_workspace_keys, local.usage_workspace_keys), coalesce(local.databricks_workspace_key, "-"))
}
