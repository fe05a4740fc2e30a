output "data_factory_name" {
  description = "Name of the sample Data Factory."
  value       = azurerm_data_factory.this.name
}

output "provision_pipeline" {
  description = "Pipeline that calls ProvisionPat."
  value       = azurerm_data_factory_pipeline.provision_pat.name
}

output "pat_secret_id" {
  description = "Versionless id of the PAT secret the Databricks linked service reads."
  value       = module.pat_rotator.secret_ids[var.target_name]
}

output "function_app_url" {
  description = "Base URL of the pat-rotator Function App."
  value       = module.pat_rotator.function_app_url
}
