# What consumer.py needs, as its environment (no secret here).
output "consumer_environment" {
  description = "Environment of consumer.py where the consumer identity runs."
  value = {
    KEY_VAULT_URL   = module.pat_rotator.key_vault_url
    SECRET_NAME     = var.secret_name
    DATABRICKS_HOST = module.pat_rotator.databricks_workspace_urls["new"]
    AZURE_CLIENT_ID = azurerm_user_assigned_identity.consumer.client_id
  }
}

output "consumer_identity_id" {
  description = "ARM id of the consumer's user-assigned identity (attach it to the compute that runs consumer.py)."
  value       = azurerm_user_assigned_identity.consumer.id
}

output "service_principal_application_id" {
  description = "Application id of the etl service principal (the secret's databricks-client-id tag)."
  value       = databricks_service_principal.etl.application_id
}
