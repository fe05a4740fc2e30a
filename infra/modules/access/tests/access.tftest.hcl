# Offline tests of who gets which right in which workspace (`terraform test` in
# infra/modules/access; no provider is needed).

variables {
  workspace_modes                     = { new = "workspace_service_principal" }
  new_workspace_created               = true
  manage_databricks_token_permissions = false
  targets = [
    { name = "analytics", workspace = "new", kind = "pat", federated = false },
  ]
}

run "created_workspace_is_least_privilege_by_default" {
  command = plan

  assert {
    condition     = length(output.contributor_workspace_keys) == 0
    error_message = "no Contributor on a created workspace by default: ${jsonencode(output.contributor_workspace_keys)}"
  }
  assert {
    condition     = output.databricks_workspace_key == "new" && output.sp_mode && output.manage_group
    error_message = "the identity must be a service principal in the created workspace"
  }
  assert {
    condition     = output.manage_token_acl && output.bootstrap_token_acl && !output.grant_token_use
    error_message = "a created workspace's tokens ACL (nobody else in it) is managed here, after a bootstrap token"
  }
  assert {
    condition     = !output.identity_is_admin && output.identity_admin_by_workspace == { new = false }
    error_message = "no admin without an OAuth-secret target: ${jsonencode(output.identity_admin_by_workspace)}"
  }
}

run "existing_workspace_acl_is_never_replaced_by_default" {
  command = plan
  variables {
    workspace_modes       = { ml = "workspace_service_principal" }
    new_workspace_created = false
    targets               = [{ name = "ml", workspace = "ml", kind = "pat", federated = false }]
  }

  assert {
    condition     = output.sp_mode && output.manage_group && !output.manage_token_acl && !output.bootstrap_token_acl
    error_message = "an existing workspace's tokens ACL must not be managed without the opt-in"
  }
  assert {
    condition     = output.grant_token_use
    error_message = "an existing workspace's group gets token CAN_USE by one added ACL entry, without replacing the ACL"
  }
  assert {
    condition     = length(output.contributor_workspace_keys) == 0 && output.identity_admin_by_workspace == { ml = false }
    error_message = "the existing workspace is wired without Contributor and without admin"
  }
}

run "existing_workspace_acl_only_on_opt_in_and_without_bootstrap" {
  command = plan
  variables {
    workspace_modes                     = { ml = "workspace_service_principal" }
    new_workspace_created               = false
    manage_databricks_token_permissions = true
    targets                             = [{ name = "ml", workspace = "ml", kind = "pat", federated = false }]
  }

  assert {
    condition     = output.manage_token_acl && !output.bootstrap_token_acl
    error_message = "opt-in manages the ACL; the bootstrap token is only for a created workspace"
  }
  assert {
    condition     = !output.grant_token_use
    error_message = "a managed (authoritative) ACL already holds the group: no second grant"
  }
}

run "created_workspace_with_only_oauth_targets_gets_admin_and_no_acl" {
  command = plan
  variables {
    targets = [{ name = "etl", workspace = "new", kind = "sp_oauth_secret", federated = false }]
  }

  assert {
    condition     = output.identity_is_admin && output.identity_admin_by_workspace == { new = true }
    error_message = "an sp_oauth_secret target makes the identity an admin of its workspace"
  }
  assert {
    condition     = !output.manage_token_acl
    error_message = "no PAT target there: no token CAN_USE needed, the ACL is left alone"
  }
}

run "admin_only_where_an_oauth_target_is" {
  command = plan
  variables {
    workspace_modes = { new = "workspace_service_principal", legacy = "azure_contributor" }
    targets = [
      { name = "a", workspace = "new", kind = "pat", federated = false },
      { name = "b", workspace = "legacy", kind = "sp_oauth_secret", federated = false },
    ]
  }

  assert {
    condition     = !output.identity_is_admin
    error_message = "the OAuth-secret target is in another workspace: no admin in the service-principal workspace"
  }
  assert {
    condition     = output.identity_admin_by_workspace == { new = false, legacy = true }
    error_message = "unexpected: ${jsonencode(output.identity_admin_by_workspace)}"
  }
  assert {
    condition     = output.contributor_workspace_keys == toset(["legacy"])
    error_message = "Contributor only where the operator chose azure_contributor"
  }
}

run "azure_contributor_on_request_for_a_created_workspace" {
  command = plan
  variables {
    workspace_modes = { new = "azure_contributor" }
  }

  assert {
    condition     = output.contributor_workspace_keys == toset(["new"]) && !output.sp_mode && !output.manage_token_acl
    error_message = "azure_contributor: Contributor, no service principal, no tokens ACL"
  }
}

run "federated_target_on_a_created_contributor_workspace" {
  command = plan
  variables {
    workspace_modes = { new = "azure_contributor" }
    targets         = [{ name = "adf", workspace = "new", kind = "pat", federated = true }]
  }

  assert {
    condition     = output.databricks_workspace_key == "new" && output.automated_federated_targets == toset(["adf"]) && output.manage_token_acl
    error_message = "the app's principal joins the group in the created workspace, whose fresh ACL is managed"
  }
  assert {
    condition     = !output.identity_is_admin
    error_message = "a federated target never makes anything an admin"
  }
}

run "no_databricks_resources_without_sp_mode_or_federated_targets" {
  command = plan
  variables {
    workspace_modes       = { analytics = "azure_contributor" }
    new_workspace_created = false
    targets               = [{ name = "a", workspace = "analytics", kind = "pat", federated = false }]
  }

  assert {
    condition     = output.databricks_workspace_key == null && !output.manage_group && !output.manage_token_acl && !output.identity_is_admin
    error_message = "the databricks provider must not be needed"
  }
}

run "rejects_two_service_principal_workspaces" {
  command = plan
  variables {
    workspace_modes = { new = "workspace_service_principal", ml = "workspace_service_principal" }
  }
  expect_failures = [var.workspace_modes]
}

run "rejects_unknown_access_mode" {
  command = plan
  variables {
    workspace_modes = { new = "admin" }
  }
  expect_failures = [var.workspace_modes]
}

run "existing_workspace_with_only_oauth_targets_needs_no_token_grant" {
  command = plan
  variables {
    workspace_modes       = { ml = "workspace_service_principal" }
    new_workspace_created = false
    targets               = [{ name = "etl", workspace = "ml", kind = "sp_oauth_secret", federated = false }]
  }

  assert {
    condition     = !output.grant_token_use && output.identity_is_admin
    error_message = "no PAT target: no token CAN_USE; the OAuth-secret target needs admin"
  }
}

run "federated_target_on_an_existing_contributor_workspace_gets_the_grant" {
  command = plan
  variables {
    workspace_modes       = { analytics = "azure_contributor" }
    new_workspace_created = false
    targets               = [{ name = "bi", workspace = "analytics", kind = "pat", federated = true }]
  }

  assert {
    condition     = output.databricks_workspace_key == "analytics" && output.manage_group && output.grant_token_use
    error_message = "the app's principal joins the group, which needs token CAN_USE there"
  }
}

run "keep_while_used_makes_the_identity_admin_of_its_workspace_only" {
  command = plan
  variables {
    workspace_modes       = { ml = "workspace_service_principal", analytics = "azure_contributor" }
    new_workspace_created = false
    targets = [
      { name = "ml", workspace = "ml", kind = "pat", federated = false, keep_while_used = true },
      { name = "a", workspace = "analytics", kind = "pat", federated = false },
    ]
  }

  assert {
    condition     = output.identity_is_admin && output.identity_admin_by_workspace == { ml = true, analytics = true }
    error_message = "keep_while_used needs the Token Management API (admin): ${jsonencode(output.identity_admin_by_workspace)}"
  }
}

run "no_admin_without_keep_while_used" {
  command = plan
  variables {
    workspace_modes       = { ml = "workspace_service_principal" }
    new_workspace_created = false
    targets               = [{ name = "ml", workspace = "ml", kind = "pat", federated = false, keep_while_used = false }]
  }

  assert {
    condition     = !output.identity_is_admin
    error_message = "keep_while_used = false needs no admin"
  }
}
