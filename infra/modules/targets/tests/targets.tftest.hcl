# Offline tests of the PAT_TARGETS generation and of the contract §2 validation
# rules: `terraform test` in infra/modules/targets (no provider is needed).

variables {
  key_vault_url = "https://kv-example.vault.azure.net/"
  workspaces = {
    analytics = {
      workspace_url = "adb-1111111111111111.11.azuredatabricks.net"
      resource_id   = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-dbx/providers/Microsoft.Databricks/workspaces/analytics"
      access_mode   = "azure_contributor"
    }
    ml = {
      workspace_url = "https://adb-2222222222222222.2.azuredatabricks.net/"
      resource_id   = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-dbx/providers/Microsoft.Databricks/workspaces/ml"
      access_mode   = "workspace_service_principal"
    }
  }
  targets = [
    { name = "analytics-prod", workspace = "analytics", secret_name = "databricks-pat" },
    { name = "ml", workspace = "ml", secret_name = "ml-pat", lifetime_days = 30, renew_before_days = 10, revoke_grace_hours = 0, scopes = ["sql", "jobs"] },
  ]
}

run "valid_targets_render_exactly_the_contract_fields" {
  command = plan

  assert {
    condition = output.pat_targets_json == jsonencode([
      {
        name                  = "analytics-prod"
        workspace_url         = "https://adb-1111111111111111.11.azuredatabricks.net"
        workspace_resource_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-dbx/providers/Microsoft.Databricks/workspaces/analytics"
        key_vault_url         = "https://kv-example.vault.azure.net"
        secret_name           = "databricks-pat"
        lifetime_days         = 90
        renew_before_days     = 30
        revoke_grace_hours    = 24
      },
      {
        name               = "ml"
        workspace_url      = "https://adb-2222222222222222.2.azuredatabricks.net"
        key_vault_url      = "https://kv-example.vault.azure.net"
        secret_name        = "ml-pat"
        lifetime_days      = 30
        renew_before_days  = 10
        revoke_grace_hours = 0
        scopes             = ["sql", "jobs"]
      },
    ])
    error_message = "unexpected PAT_TARGETS: ${output.pat_targets_json}"
  }

  assert {
    condition     = output.secret_ids["ml"] == "https://kv-example.vault.azure.net/secrets/ml-pat"
    error_message = "unexpected secret id ${output.secret_ids["ml"]}"
  }
}

run "settings_hash_changes_only_for_the_changed_target" {
  command = plan

  variables {
    targets = [
      { name = "analytics-prod", workspace = "analytics", secret_name = "databricks-pat" },
      { name = "ml", workspace = "ml", secret_name = "ml-pat", lifetime_days = 60, renew_before_days = 10, revoke_grace_hours = 0, scopes = ["sql", "jobs"] },
    ]
  }

  assert {
    condition     = output.settings_hash["analytics-prod"] == run.valid_targets_render_exactly_the_contract_fields.settings_hash["analytics-prod"]
    error_message = "an unchanged target's hash changed"
  }

  assert {
    condition     = output.settings_hash["ml"] != run.valid_targets_render_exactly_the_contract_fields.settings_hash["ml"]
    error_message = "a changed target's hash did not change"
  }
}

run "rejects_no_targets" {
  command = plan
  variables { targets = [] }
  expect_failures = [var.targets]
}

run "rejects_bad_target_name" {
  command = plan
  variables { targets = [{ name = "Analytics_Prod", workspace = "analytics", secret_name = "pat" }] }
  expect_failures = [var.targets]
}

run "rejects_too_long_target_name" {
  command = plan
  variables { targets = [{ name = "a${join("", [for i in range(63) : "b"])}", workspace = "analytics", secret_name = "pat" }] }
  expect_failures = [var.targets]
}

run "rejects_duplicate_target_names" {
  command = plan
  variables {
    targets = [
      { name = "a", workspace = "analytics", secret_name = "pat-a" },
      { name = "a", workspace = "ml", secret_name = "pat-b" },
    ]
  }
  expect_failures = [var.targets]
}

run "rejects_bad_secret_name" {
  command = plan
  variables { targets = [{ name = "a", workspace = "analytics", secret_name = "my_secret" }] }
  expect_failures = [var.targets]
}

run "rejects_shared_secret_name" {
  command = plan
  variables {
    targets = [
      { name = "a", workspace = "analytics", secret_name = "pat" },
      { name = "b", workspace = "ml", secret_name = "PAT" },
    ]
  }
  expect_failures = [var.targets]
}

run "rejects_lifetime_zero" {
  command = plan
  variables { targets = [{ name = "a", workspace = "analytics", secret_name = "pat", lifetime_days = 0 }] }
  expect_failures = [var.targets]
}

run "rejects_lifetime_over_730" {
  command = plan
  variables { targets = [{ name = "a", workspace = "analytics", secret_name = "pat", lifetime_days = 731 }] }
  expect_failures = [var.targets]
}

run "rejects_fractional_lifetime" {
  command = plan
  variables { targets = [{ name = "a", workspace = "analytics", secret_name = "pat", lifetime_days = 1.5 }] }
  expect_failures = [var.targets]
}

run "accepts_lifetime_bounds" {
  command = plan
  variables {
    targets = [
      { name = "a", workspace = "analytics", secret_name = "pat-a", lifetime_days = 730, renew_before_days = 729 },
      { name = "b", workspace = "analytics", secret_name = "pat-b", lifetime_days = 2, renew_before_days = 1, revoke_grace_hours = 720 },
    ]
  }
  assert {
    condition     = length(output.pat_targets) == 2
    error_message = "boundary values must be accepted"
  }
}

run "rejects_renew_before_not_below_lifetime" {
  command = plan
  variables { targets = [{ name = "a", workspace = "analytics", secret_name = "pat", lifetime_days = 30, renew_before_days = 30 }] }
  expect_failures = [var.targets]
}

run "rejects_renew_before_zero" {
  command = plan
  variables { targets = [{ name = "a", workspace = "analytics", secret_name = "pat", renew_before_days = 0 }] }
  expect_failures = [var.targets]
}

run "rejects_renew_before_default_with_short_lifetime" {
  # renew_before_days defaults to 30, which must still be below lifetime_days.
  command = plan
  variables { targets = [{ name = "a", workspace = "analytics", secret_name = "pat", lifetime_days = 30 }] }
  expect_failures = [var.targets]
}

run "rejects_grace_over_720" {
  command = plan
  variables { targets = [{ name = "a", workspace = "analytics", secret_name = "pat", revoke_grace_hours = 721 }] }
  expect_failures = [var.targets]
}

run "rejects_negative_grace" {
  command = plan
  variables { targets = [{ name = "a", workspace = "analytics", secret_name = "pat", revoke_grace_hours = -1 }] }
  expect_failures = [var.targets]
}

run "rejects_empty_scopes" {
  command = plan
  variables { targets = [{ name = "a", workspace = "analytics", secret_name = "pat", scopes = [] }] }
  expect_failures = [var.targets]
}

run "rejects_scope_with_comma" {
  command = plan
  variables { targets = [{ name = "a", workspace = "analytics", secret_name = "pat", scopes = ["sql,jobs"] }] }
  expect_failures = [var.targets]
}

run "rejects_unknown_workspace" {
  command = plan
  variables { targets = [{ name = "a", workspace = "nope", secret_name = "pat" }] }
  expect_failures = [var.targets]
}

run "rejects_unknown_access_mode" {
  command = plan
  variables {
    workspaces = {
      analytics = {
        workspace_url = "adb-1.1.azuredatabricks.net"
        resource_id   = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Databricks/workspaces/analytics"
        access_mode   = "pat"
      }
    }
    targets = [{ name = "a", workspace = "analytics", secret_name = "pat" }]
  }
  expect_failures = [var.workspaces]
}

run "rejects_plain_http_workspace_url" {
  command = plan
  variables {
    workspaces = {
      analytics = {
        workspace_url = "http://adb-1.1.azuredatabricks.net"
        resource_id   = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Databricks/workspaces/analytics"
        access_mode   = "azure_contributor"
      }
    }
    targets = [{ name = "a", workspace = "analytics", secret_name = "pat" }]
  }
  expect_failures = [var.workspaces]
}

run "rejects_non_databricks_resource_id" {
  command = plan
  variables {
    workspaces = {
      analytics = {
        workspace_url = "adb-1.1.azuredatabricks.net"
        resource_id   = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/x"
        access_mode   = "azure_contributor"
      }
    }
    targets = [{ name = "a", workspace = "analytics", secret_name = "pat" }]
  }
  expect_failures = [var.workspaces]
}

run "rejects_http_key_vault_url" {
  command = plan
  variables { key_vault_url = "http://kv.vault.azure.net" }
  expect_failures = [var.key_vault_url]
}

run "client_id_is_written_in_lower_case_without_management_headers" {
  command = plan
  variables {
    targets = [
      # analytics is an azure_contributor workspace: a client_id target on it must not
      # get workspace_resource_id (the app's service principal would become an admin).
      { name = "adf", workspace = "analytics", secret_name = "adf-pat", client_id = "0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D", federated = true },
      { name = "ml", workspace = "ml", secret_name = "ml-pat", client_id = "11111111-2222-3333-4444-555555555555", federated = true },
    ]
  }

  assert {
    condition     = output.by_name["adf"].client_id == "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    error_message = "client_id must be lower-cased: ${jsonencode(output.by_name["adf"])}"
  }

  assert {
    condition     = !contains(keys(output.by_name["adf"]), "workspace_resource_id")
    error_message = "a client_id target must never carry workspace_resource_id: ${jsonencode(output.by_name["adf"])}"
  }

  assert {
    condition     = output.by_name["ml"].client_id == "11111111-2222-3333-4444-555555555555"
    error_message = "unexpected client_id: ${jsonencode(output.by_name["ml"])}"
  }
}

run "targets_without_client_id_carry_no_client_id_field" {
  command = plan

  assert {
    condition     = alltrue([for t in output.pat_targets : !contains(keys(t), "client_id")])
    error_message = "client_id must be absent unless configured: ${output.pat_targets_json}"
  }
}

run "autoscope_is_passed_only_when_set" {
  command = plan
  variables {
    targets = [
      { name = "a", workspace = "ml", secret_name = "pat-a", autoscope = false },
      { name = "b", workspace = "ml", secret_name = "pat-b" },
    ]
  }

  assert {
    condition     = output.by_name["a"].autoscope == false && !contains(keys(output.by_name["b"]), "autoscope")
    error_message = "unexpected autoscope: ${output.pat_targets_json}"
  }
}

run "rejects_client_id_that_is_not_a_guid" {
  command = plan
  variables { targets = [{ name = "a", workspace = "ml", secret_name = "pat", client_id = "pat-rotator-app", federated = true }] }
  expect_failures = [var.targets]
}

run "rejects_client_id_guid_with_braces" {
  command = plan
  variables { targets = [{ name = "a", workspace = "ml", secret_name = "pat", client_id = "{11111111-2222-3333-4444-555555555555}", federated = true }] }
  expect_failures = [var.targets]
}

run "rejects_client_id_without_federated" {
  command = plan
  variables { targets = [{ name = "a", workspace = "ml", secret_name = "pat", client_id = "11111111-2222-3333-4444-555555555555" }] }
  expect_failures = [var.targets]
}

run "structure_is_known_at_plan_time_with_unknown_values" {
  command = plan

  module {
    source = "./tests/fixtures/unknown_values"
  }

  assert {
    condition     = jsonencode(output.target_names) == jsonencode(["one", "three", "two"])
    error_message = "target names must be known at plan time"
  }

  assert {
    condition = jsonencode(output.fields) == jsonencode({
      one = ["key_vault_url", "lifetime_days", "name", "renew_before_days", "revoke_grace_hours", "secret_name", "workspace_resource_id", "workspace_url"]
      two = ["key_vault_url", "lifetime_days", "name", "renew_before_days", "revoke_grace_hours", "scopes", "secret_name", "workspace_resource_id", "workspace_url"]
      # client_id of an app registration created in the same apply: unknown, but the
      # field set is known (and has no workspace_resource_id).
      three = ["client_id", "key_vault_url", "lifetime_days", "name", "renew_before_days", "revoke_grace_hours", "secret_name", "workspace_url"]
    })
    error_message = "unexpected fields: ${jsonencode(output.fields)}"
  }
}

# ---------------------------------------------------------------------------
# Contract section 9: OAuth secrets of Databricks service principals
# ---------------------------------------------------------------------------

run "oauth_secret_target_renders_kind_and_lower_case_service_principal" {
  command = plan
  variables {
    targets = [
      # analytics is azure_contributor: the identity is admin through the management
      # headers, so the target keeps workspace_resource_id.
      { name = "etl", workspace = "analytics", secret_name = "etl-oauth", kind = "sp_oauth_secret", service_principal = "9A8B7C6D-5E4F-4A3B-8C2D-1E0F9A8B7C6D", lifetime_days = 730, renew_before_days = 60 },
      { name = "ml", workspace = "ml", secret_name = "ml-oauth", kind = "sp_oauth_secret", service_principal = "11111111-2222-3333-4444-555555555555" },
      { name = "pat", workspace = "ml", secret_name = "ml-pat" },
    ]
  }

  assert {
    condition = output.by_name["etl"] == {
      name                  = "etl"
      workspace_url         = "https://adb-1111111111111111.11.azuredatabricks.net"
      workspace_resource_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-dbx/providers/Microsoft.Databricks/workspaces/analytics"
      key_vault_url         = "https://kv-example.vault.azure.net"
      secret_name           = "etl-oauth"
      lifetime_days         = 730
      renew_before_days     = 60
      revoke_grace_hours    = 24
      kind                  = "sp_oauth_secret"
      service_principal     = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
    }
    error_message = "unexpected OAuth-secret target: ${jsonencode(output.by_name["etl"])}"
  }

  assert {
    condition     = !contains(keys(output.by_name["ml"]), "workspace_resource_id") && output.by_name["ml"].kind == "sp_oauth_secret"
    error_message = "a workspace_service_principal workspace gets no workspace_resource_id: ${jsonencode(output.by_name["ml"])}"
  }

  assert {
    condition     = !contains(keys(output.by_name["pat"]), "kind") && !contains(keys(output.by_name["pat"]), "service_principal")
    error_message = "a PAT target carries neither kind nor service_principal: ${jsonencode(output.by_name["pat"])}"
  }
}

run "rejects_oauth_secret_without_service_principal" {
  command = plan
  variables { targets = [{ name = "a", workspace = "ml", secret_name = "s", kind = "sp_oauth_secret" }] }
  expect_failures = [var.targets]
}

run "rejects_service_principal_on_a_pat_target" {
  command = plan
  variables { targets = [{ name = "a", workspace = "ml", secret_name = "s", service_principal = "11111111-2222-3333-4444-555555555555" }] }
  expect_failures = [var.targets]
}

run "rejects_unknown_kind" {
  command = plan
  variables { targets = [{ name = "a", workspace = "ml", secret_name = "s", kind = "oauth" }] }
  expect_failures = [var.targets]
}

run "rejects_service_principal_that_is_not_a_guid" {
  command = plan
  variables { targets = [{ name = "a", workspace = "ml", secret_name = "s", kind = "sp_oauth_secret", service_principal = "etl-service-principal" }] }
  expect_failures = [var.targets]
}

run "rejects_scopes_with_oauth_secret" {
  command = plan
  variables { targets = [{ name = "a", workspace = "ml", secret_name = "s", kind = "sp_oauth_secret", service_principal = "11111111-2222-3333-4444-555555555555", scopes = ["sql"] }] }
  expect_failures = [var.targets]
}

run "rejects_autoscope_with_oauth_secret" {
  command = plan
  variables { targets = [{ name = "a", workspace = "ml", secret_name = "s", kind = "sp_oauth_secret", service_principal = "11111111-2222-3333-4444-555555555555", autoscope = true }] }
  expect_failures = [var.targets]
}

run "rejects_client_id_with_oauth_secret" {
  command = plan
  variables { targets = [{ name = "a", workspace = "ml", secret_name = "s", kind = "sp_oauth_secret", service_principal = "11111111-2222-3333-4444-555555555555", client_id = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", federated = true }] }
  expect_failures = [var.targets]
}

run "rejects_oauth_secret_lifetime_over_730" {
  command = plan
  variables { targets = [{ name = "a", workspace = "ml", secret_name = "s", kind = "sp_oauth_secret", service_principal = "11111111-2222-3333-4444-555555555555", lifetime_days = 731 }] }
  expect_failures = [var.targets]
}

# ---------------------------------------------------------------------------
# Targets in existing vaults (key_vault), keep_while_used (contract section 10)
# ---------------------------------------------------------------------------

run "targets_in_existing_vaults_get_their_vaults_url" {
  command = plan
  variables {
    existing_key_vault_urls = { shared = "https://kv-shared.vault.azure.net/" }
    targets = [
      { name = "a", workspace = "analytics", secret_name = "pat" },
      # the same secret name in another vault is another secret
      { name = "b", workspace = "ml", secret_name = "PAT", key_vault = "shared" },
    ]
  }

  assert {
    condition     = output.by_name["a"].key_vault_url == "https://kv-example.vault.azure.net" && output.by_name["b"].key_vault_url == "https://kv-shared.vault.azure.net"
    error_message = "unexpected vault URLs: ${output.pat_targets_json}"
  }
  assert {
    condition     = output.secret_ids["b"] == "https://kv-shared.vault.azure.net/secrets/PAT"
    error_message = "unexpected secret id ${output.secret_ids["b"]}"
  }
  assert {
    condition     = jsonencode(output.vault_hosts) == jsonencode(["kv-example.vault.azure.net", "kv-shared.vault.azure.net"])
    error_message = "vault_hosts (PAT_ALLOWED_VAULTS) must list each vault host once: ${jsonencode(output.vault_hosts)}"
  }
}

run "vault_hosts_lists_a_shared_vault_once" {
  command = plan

  assert {
    condition     = jsonencode(output.vault_hosts) == jsonencode(["kv-example.vault.azure.net"])
    error_message = "two targets in one vault: one host, got ${jsonencode(output.vault_hosts)}"
  }
}

run "rejects_shared_secret_name_in_an_existing_vault" {
  command = plan
  variables {
    existing_key_vault_urls = { shared = "https://kv-shared.vault.azure.net/" }
    targets = [
      { name = "a", workspace = "analytics", secret_name = "pat", key_vault = "shared" },
      { name = "b", workspace = "ml", secret_name = "Pat", key_vault = "shared" },
    ]
  }
  expect_failures = [var.targets]
}

run "rejects_unknown_key_vault" {
  command = plan
  variables { targets = [{ name = "a", workspace = "analytics", secret_name = "pat", key_vault = "nope" }] }
  expect_failures = [var.targets]
}

run "rejects_default_as_an_existing_vault_key" {
  command = plan
  variables { existing_key_vault_urls = { default = "https://kv-shared.vault.azure.net/" } }
  expect_failures = [var.existing_key_vault_urls]
}

run "keep_while_used_is_rendered_only_when_set" {
  command = plan
  variables {
    targets = [
      { name = "a", workspace = "analytics", secret_name = "pat-a", keep_while_used = true },
      { name = "b", workspace = "ml", secret_name = "pat-b" },
    ]
  }

  assert {
    condition     = output.by_name["a"].keep_while_used == true && !contains(keys(output.by_name["b"]), "keep_while_used")
    error_message = "keep_while_used must be sent only when set: ${output.pat_targets_json}"
  }
}

run "rejects_keep_while_used_with_oauth_secret" {
  command = plan
  variables {
    targets = [{ name = "etl", workspace = "ml", secret_name = "etl", kind = "sp_oauth_secret", service_principal = "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162", keep_while_used = true }]
  }
  expect_failures = [var.targets]
}

run "rejects_keep_while_used_with_client_id" {
  command = plan
  variables {
    targets = [{ name = "bi", workspace = "ml", secret_name = "bi", client_id = "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162", federated = true, keep_while_used = true }]
  }
  expect_failures = [var.targets]
}
