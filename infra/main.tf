# The root configuration an operator applies: the provider configurations (providers.tf),
# the pin of every provider (versions.tf), and one call of the module that holds every
# resource (modules/pat-rotator). Other configurations call that module directly (see
# examples/); this root adds nothing but providers, so it behaves exactly as the module.
# State written by the releases before the split is moved into the module by moved.tf.

module "pat_rotator" {
  source = "./modules/pat-rotator"

  location                             = var.location
  name_prefix                          = var.name_prefix
  name_suffix                          = var.name_suffix
  resource_group_name                  = var.resource_group_name
  create_resource_group                = var.create_resource_group
  tags                                 = var.tags
  rotation_schedule                    = var.rotation_schedule
  rust_log                             = var.rust_log
  log_format                           = var.log_format
  max_concurrency                      = var.max_concurrency
  instance_memory_in_mb                = var.instance_memory_in_mb
  maximum_instance_count               = var.maximum_instance_count
  azure_cloud                          = var.azure_cloud
  alert_email_addresses                = var.alert_email_addresses
  alert_webhook_urls                   = var.alert_webhook_urls
  alert_no_success_hours               = var.alert_no_success_hours
  log_retention_days                   = var.log_retention_days
  key_vault_soft_delete_retention_days = var.key_vault_soft_delete_retention_days
  key_vault_role                       = var.key_vault_role
  existing_key_vaults                  = var.existing_key_vaults
  existing_system_topic_ids            = var.existing_system_topic_ids
  enable_event_subscriptions           = var.enable_event_subscriptions
  new_databricks_workspace             = var.new_databricks_workspace
  existing_databricks_workspaces       = var.existing_databricks_workspaces
  databricks_token_usage_extra_acl     = var.databricks_token_usage_extra_acl
  manage_databricks_token_permissions  = var.manage_databricks_token_permissions
  targets                              = var.targets
  targets_source                       = var.targets_source
  package_path                         = var.package_path
  deploy_package                       = var.deploy_package
  provision_on_apply                   = var.provision_on_apply
  provision_timeout_seconds            = var.provision_timeout_seconds
}
