output "resource_group_name" {
  description = "Resource group of the deployment."
  value       = local.resource_group_name
}

output "function_app_name" {
  description = "Name of the Function App."
  value       = azurerm_function_app_flex_consumption.this.name
}

output "function_app_url" {
  description = "Base URL of the Function App."
  value       = "https://${azurerm_function_app_flex_consumption.this.default_hostname}"
}

output "provision_pat_url" {
  description = "URL of the ProvisionPat function (POST {\"target\":\"<name>\"} with the function key in x-functions-key)."
  value       = "https://${azurerm_function_app_flex_consumption.this.default_hostname}/api/ProvisionPat"
}

output "identity_principal_id" {
  description = "Object (principal) id of the Function App's user-assigned managed identity: the subject of every federated credential a client_id target's app registration needs."
  value       = azurerm_user_assigned_identity.function.principal_id
}

output "identity_client_id" {
  description = "Client id of the Function App's user-assigned managed identity (AZURE_CLIENT_ID); its Databricks application id in workspace_service_principal mode."
  value       = azurerm_user_assigned_identity.function.client_id
}

output "federated_credential" {
  description = "The federated identity credential every client_id target's app registration must have (issuer, subject, audiences): created here for create_app_registration targets, to be added by hand for an existing client_id."
  value       = local.federated_credential
}

output "target_client_ids" {
  description = "Per federated target, the client id whose PAT it holds."
  value       = local.target_client_ids
}

output "databricks_manual_steps" {
  description = "What an operator does by hand in workspaces the databricks provider does not serve: per federated target there, add its app's service principal (application id) to the workspace as a plain member and give it token CAN_USE."
  value = {
    for t in var.targets : t.name => {
      workspace_url  = local.workspaces[t.workspace].workspace_url
      application_id = local.target_client_ids[t.name]
      token_acl      = "add CAN_USE for this service principal (or a group it is in) under Settings > Advanced > Personal Access Tokens > Permissions; do not remove other entries"
    } if contains(local.federated_target_names, t.name) && t.workspace != local.databricks_workspace_key
  }
}

output "key_vault_id" {
  description = "ARM id of the Key Vault created here (\"default\"), which holds the secrets of the targets without key_vault."
  value       = azurerm_key_vault.this.id
}

output "key_vault_url" {
  description = "URL of the Key Vault created here (\"default\"), which holds the secrets of the targets without key_vault."
  value       = azurerm_key_vault.this.vault_uri
}

output "secret_ids" {
  description = "Per target, the versionless id of the Key Vault secret that holds its PAT (no secret value)."
  value       = module.targets.secret_ids
}

output "secret_names" {
  description = "Per target, the Key Vault secret name that holds its PAT."
  value       = { for t in module.targets.pat_targets : t.name => t.secret_name }
}

output "pat_targets_json" {
  description = "The targets' JSON (no secret): the PAT_TARGETS setting, or with targets_source = \"blob\" the blob's content; e.g. for `PAT_TARGETS=... pat-rotator rotate --target NAME`."
  value       = module.targets.pat_targets_json
}

output "databricks_workspace_urls" {
  description = "URL of every configured workspace, by key (\"new\" for the created one)."
  value       = { for k, w in local.workspaces : k => w.workspace_url }
}

output "provisioned_targets" {
  description = "Targets whose secret was provisioned by this apply's ProvisionPat step. Reference this output (or depends_on the module) from resources that read the secrets."
  value       = { for k, v in terraform_data.provision : k => v.id }
}

output "function_key" {
  description = "The Function App's default host key (authorises ProvisionPat). A secret: `terraform output -raw function_key` only where you must."
  value       = try(data.azurerm_function_app_host_keys.this[0].default_function_key, null)
  sensitive   = true
}

output "databricks_workspace" {
  description = "The one workspace the caller's databricks provider must serve (workspace-level provider: host = .url, azure_workspace_resource_id = .resource_id), or null when no Databricks resource is managed here (then the provider is never called). It is the workspace in workspace_service_principal mode if any, else the workspace of the first client_id target."
  value = local.databricks_workspace_key == null ? null : {
    key         = local.databricks_workspace_key
    url         = local.sp_workspace_url
    resource_id = local.sp_workspace_resource_id
  }
}

output "identity_is_workspace_admin" {
  description = "Per workspace key, whether the Function App identity is a workspace admin there: true in azure_contributor mode (management headers) and where an sp_oauth_secret or keep_while_used target made it one; false where it is a plain member."
  value       = module.access.identity_admin_by_workspace
}

output "new_databricks_workspace" {
  description = "The workspace created here ({url, resource_id}), or null. Unlike databricks_workspace it depends on no target, so a caller whose targets name Databricks resources (a service principal for an sp_oauth_secret target) can configure its databricks provider from it without a dependency cycle."
  value = length(azurerm_databricks_workspace.new) == 0 ? null : {
    url         = local.workspaces["new"].workspace_url
    resource_id = local.workspaces["new"].resource_id
  }
}

output "status_url" {
  description = "URL of the Status function (GET with the function key in x-functions-key: 200 with one object per target, contract section 3); what the release workflow checks after a deployment."
  value       = "https://${azurerm_function_app_flex_consumption.this.default_hostname}/api/Status"
}

output "key_vault_ids" {
  description = "ARM id of every vault of the targets, by key (\"default\" = the vault created here)."
  value       = { for k, v in local.vaults : k => v.id }
}

output "event_system_topic_ids" {
  description = "Per vault key, the Event Grid system topic its Key Vault events go to (created here, or the one named in existing_system_topic_ids)."
  value       = { for k, t in local.system_topics : k => t.id }
}

output "event_subscriptions_enabled" {
  description = "Whether SecretEvent is subscribed to the vaults' events (enable_event_subscriptions, the second stage)."
  value       = length(azurerm_eventgrid_system_topic_event_subscription.secret_event) > 0
}

output "targets_blob_url" {
  description = "targets_source = \"blob\": the https URL of the targets blob (PAT_TARGETS_BLOB); null otherwise."
  value       = try(azurerm_storage_blob.targets[0].url, null)
}

output "workbook_id" {
  description = "ARM id of the workbook (per target: last result, days left, failures over 30 days, superseded credentials in use)."
  value       = azurerm_application_insights_workbook.this.id
}
