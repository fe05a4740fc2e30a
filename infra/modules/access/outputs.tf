output "contributor_workspace_keys" {
  description = "Workspaces where the identity gets Contributor on the workspace resource (and so is a workspace admin through the management headers)."
  value       = local.contributor_workspace_keys
}

output "sp_workspace_keys" {
  description = "Workspaces in workspace_service_principal mode (at most one)."
  value       = local.sp_workspace_keys
}

output "federated_target_names" {
  description = "Targets with a client_id (existing or created app registration)."
  value       = local.federated_target_names
}

output "databricks_workspace_key" {
  description = "The workspace the databricks provider serves, or null."
  value       = local.databricks_workspace_key
}

output "sp_mode" {
  description = "The identity is added to the provider's workspace as a service principal (group pat-rotator)."
  value       = local.sp_mode
}

output "automated_federated_targets" {
  description = "Federated targets whose app's service principal is added to the provider's workspace."
  value       = local.automated_federated_targets
}

output "manage_group" {
  description = "The group pat-rotator is managed in the provider's workspace."
  value       = local.manage_group
}

output "provider_workspace_is_new" {
  description = "The provider's workspace is the one created here."
  value       = local.provider_workspace_is_new
}

output "manage_token_acl" {
  description = "The provider's workspace's tokens ACL (authoritative) is managed here."
  value       = local.manage_token_acl
}

output "bootstrap_token_acl" {
  description = "A bootstrap token is created first (a tokens ACL needs one token in the workspace): only for a workspace created here."
  value       = local.manage_token_acl && local.provider_workspace_is_new
}

output "grant_token_use" {
  description = "The group pat-rotator is given token CAN_USE in the provider's (existing) workspace by adding one ACL entry (scripts/grant-token-use.sh), without replacing the ACL."
  value       = local.grant_token_use
}

output "identity_is_admin" {
  description = "The identity is put in the provider's workspace's admins group (an sp_oauth_secret or keep_while_used target there)."
  value       = local.identity_is_admin
}

output "identity_admin_by_workspace" {
  description = "Per workspace key, whether the identity is a workspace admin there."
  value = {
    for k, m in var.workspace_modes : k => (m == "azure_contributor" || (k == local.databricks_workspace_key && local.identity_is_admin))
  }
}
