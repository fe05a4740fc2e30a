# Turns the `targets` input into the PAT_TARGETS document the Function App reads
# (contract §2). Pure data: no providers, so it can be planned and tested offline
# (`terraform test` in this folder).

terraform {
  required_version = ">= 1.9.0, < 2.0.0"
}

locals {
  # Normalise workspace URLs: bare host -> https://host, no trailing slash.
  workspace_urls = {
    for k, w in var.workspaces :
    k => trimsuffix(startswith(w.workspace_url, "https://") ? w.workspace_url : "https://${w.workspace_url}", "/")
  }

  # Every vault a target may name: "default" (var.key_vault_url, the vault the pat-rotator
  # module creates) and the existing ones, without a trailing slash.
  key_vault_urls = { for k, u in merge(var.existing_key_vault_urls, { default = var.key_vault_url }) : k => trimsuffix(u, "/") }

  # One object per target with exactly the target fields of contract §2. Optional
  # fields are left out rather than sent as null: workspace_resource_id only for
  # workspaces in "azure_contributor" mode (it switches on the management-token
  # headers) and never for a target with client_id (the headers would make the app's
  # service principal a workspace admin), scopes only when configured, client_id (lower
  # case) only for federated targets, kind and service_principal (lower case) only for
  # OAuth-secret targets (contract section 9), keep_while_used only when set (contract
  # section 10, "Usage"). The presence of a field depends only on
  # plan-time inputs, so the structure is known at plan time even when values (a new
  # vault's URL, a new workspace's id) are not.
  pat_targets = [
    for t in var.targets : merge(
      {
        name               = t.name
        workspace_url      = local.workspace_urls[t.workspace]
        key_vault_url      = local.key_vault_urls[t.key_vault]
        secret_name        = t.secret_name
        lifetime_days      = t.lifetime_days
        renew_before_days  = t.renew_before_days
        revoke_grace_hours = t.revoke_grace_hours
      },
      { for k, v in { workspace_resource_id = var.workspaces[t.workspace].resource_id } : k => v if var.workspaces[t.workspace].access_mode == "azure_contributor" && !t.federated },
      { for k, v in { scopes = t.scopes } : k => v if t.scopes != null },
      { for k, v in { autoscope = t.autoscope } : k => v if t.autoscope != null },
      { for k, v in { keep_while_used = t.keep_while_used } : k => v if t.keep_while_used != null },
      { for k, v in { client_id = t.client_id == null ? null : lower(t.client_id) } : k => v if t.federated },
      # Contract section 9; kind is left out for PAT targets (its default), so releases
      # that predate section 9 read the same document as before.
      { for k, v in { kind = t.kind, service_principal = lower(coalesce(t.service_principal, "-")) } : k => v if t.kind == "sp_oauth_secret" },
    )
  ]
}
