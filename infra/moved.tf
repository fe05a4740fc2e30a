# Releases before the module split kept every resource in this root module. These blocks
# move each of them, with all its count / for_each instances, to the same address inside
# module.pat_rotator, so an existing state plans no destroy and no re-create of any real
# resource (Terraform >= 1.1 reads moved blocks; this configuration needs >= 1.9).
# infra/tests/test_module_split.py checks that every resource of the module that existed
# before the split has its block here, and that every `to` names a declared resource; a
# `terraform plan` over a stand-in of the old and the new layout shows only moves.
#
# Callers of the module (examples/data-factory called this folder as `module
# "pat_rotator"`, now modules/pat-rotator under the same name) keep their addresses
# unchanged and need no moved block.

moved {
  from = azurerm_resource_group.this
  to   = module.pat_rotator.azurerm_resource_group.this
}

moved {
  from = azurerm_databricks_workspace.new
  to   = module.pat_rotator.azurerm_databricks_workspace.new
}

moved {
  from = azurerm_storage_account.host
  to   = module.pat_rotator.azurerm_storage_account.host
}

moved {
  from = azurerm_storage_container.deployment
  to   = module.pat_rotator.azurerm_storage_container.deployment
}

moved {
  from = azurerm_key_vault.this
  to   = module.pat_rotator.azurerm_key_vault.this
}

moved {
  from = azurerm_service_plan.this
  to   = module.pat_rotator.azurerm_service_plan.this
}

moved {
  from = azurerm_user_assigned_identity.function
  to   = module.pat_rotator.azurerm_user_assigned_identity.function
}

moved {
  from = azurerm_function_app_flex_consumption.this
  to   = module.pat_rotator.azurerm_function_app_flex_consumption.this
}

moved {
  from = azurerm_role_assignment.key_vault_secrets_officer
  to   = module.pat_rotator.azurerm_role_assignment.key_vault_secrets_officer
}

moved {
  from = azurerm_role_assignment.storage_blob_data_owner
  to   = module.pat_rotator.azurerm_role_assignment.storage_blob_data_owner
}

moved {
  from = azurerm_role_assignment.storage_table_data_contributor
  to   = module.pat_rotator.azurerm_role_assignment.storage_table_data_contributor
}

moved {
  from = azurerm_role_assignment.monitoring_metrics_publisher
  to   = module.pat_rotator.azurerm_role_assignment.monitoring_metrics_publisher
}

moved {
  from = azurerm_role_assignment.workspace_contributor
  to   = module.pat_rotator.azurerm_role_assignment.workspace_contributor
}

moved {
  from = azurerm_log_analytics_workspace.this
  to   = module.pat_rotator.azurerm_log_analytics_workspace.this
}

moved {
  from = azurerm_application_insights.this
  to   = module.pat_rotator.azurerm_application_insights.this
}

moved {
  from = azurerm_monitor_diagnostic_setting.key_vault
  to   = module.pat_rotator.azurerm_monitor_diagnostic_setting.key_vault
}

moved {
  from = azurerm_monitor_diagnostic_setting.host_blob
  to   = module.pat_rotator.azurerm_monitor_diagnostic_setting.host_blob
}

moved {
  from = azurerm_monitor_action_group.alarm
  to   = module.pat_rotator.azurerm_monitor_action_group.alarm
}

moved {
  from = azurerm_monitor_scheduled_query_rules_alert_v2.rotation_failed
  to   = module.pat_rotator.azurerm_monitor_scheduled_query_rules_alert_v2.rotation_failed
}

moved {
  from = azurerm_monitor_scheduled_query_rules_alert_v2.rotation_missing
  to   = module.pat_rotator.azurerm_monitor_scheduled_query_rules_alert_v2.rotation_missing
}

moved {
  from = azuread_application_registration.target
  to   = module.pat_rotator.azuread_application_registration.target
}

moved {
  from = azuread_service_principal.target
  to   = module.pat_rotator.azuread_service_principal.target
}

moved {
  from = azuread_application_federated_identity_credential.target
  to   = module.pat_rotator.azuread_application_federated_identity_credential.target
}

moved {
  from = databricks_service_principal.function
  to   = module.pat_rotator.databricks_service_principal.function
}

moved {
  from = databricks_service_principal.target
  to   = module.pat_rotator.databricks_service_principal.target
}

moved {
  from = databricks_group.pat_rotator
  to   = module.pat_rotator.databricks_group.pat_rotator
}

moved {
  from = databricks_group_member.function
  to   = module.pat_rotator.databricks_group_member.function
}

moved {
  from = databricks_group_member.target
  to   = module.pat_rotator.databricks_group_member.target
}

moved {
  from = databricks_permissions.token_usage_authoritative
  to   = module.pat_rotator.databricks_permissions.token_usage_authoritative
}

moved {
  from = terraform_data.deploy_package
  to   = module.pat_rotator.terraform_data.deploy_package
}

moved {
  from = terraform_data.provision
  to   = module.pat_rotator.terraform_data.provision
}

moved {
  from = module.targets
  to   = module.pat_rotator.module.targets
}

# Releases before the removal of the default tokens ACL managed it here as
# databricks_permissions.token_usage. Forgotten, never destroyed: the provider's Delete
# would reset the workspace's ACL to the admins and revoke everyone else's tokens
# (modules/pat-rotator/databricks.tf has the same block for the module's own address).
removed {
  from = databricks_permissions.token_usage

  lifecycle {
    destroy = false
  }
}
