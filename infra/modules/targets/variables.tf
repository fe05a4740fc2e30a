# Inputs of the targets module. The validation rules mirror the configuration
# rules of the contract (shared/spec/contract.md §2), so a bad target is a plan-time
# error naming the target and the field instead of a runtime `config_invalid`.

variable "targets" {
  description = <<-EOT
    The PATs to keep rotated, one object per target:
      name               - target name, ^[a-z0-9][a-z0-9-]{0,62}$, unique
      workspace          - key of the workspace this PAT is for (see `workspaces`)
      secret_name        - Key Vault secret that holds the PAT, ^[0-9a-zA-Z-]{1,127}$, unique
      lifetime_days      - token lifetime, integer 1..730 (default 90)
      renew_before_days  - rotate this many days before expiry, integer, 0 < x < lifetime_days (default 30)
      revoke_grace_hours - keep the previous token this long after a rotation, integer 0..720 (default 24)
      scopes             - optional list of token scopes passed to token create
      autoscope          - optional bool, passed to token create as autoscope_enabled when set
      client_id          - optional: application (client) id of the Entra app registration
                           whose PAT this target holds (contract section 8); a GUID,
                           written in lower case. Such a target never carries
                           workspace_resource_id: the management headers would make the
                           app's service principal a workspace admin.
      federated          - true when client_id is (or will be, once its app registration
                           exists) set; known at plan time even when client_id is not
      kind               - "pat" (default) or "sp_oauth_secret" (contract section 9: the
                           target holds an OAuth secret of a Databricks service principal)
      service_principal  - with kind = "sp_oauth_secret" only, and then required: the
                           application id (GUID) of that service principal; written in
                           lower case. Such a target takes no scopes, autoscope or
                           client_id, and lifetime_days is at most 730.
      key_vault          - "default" (the vault in key_vault_url) or a key of
                           existing_key_vault_urls: the vault that holds this target's secret
      keep_while_used    - optional bool, kind "pat" only and not with client_id: a
                           superseded token still in use is kept past its grace (contract
                           section 10, "Usage")
  EOT
  type = list(object({
    name               = string
    workspace          = string
    secret_name        = string
    lifetime_days      = optional(number, 90)
    renew_before_days  = optional(number, 30)
    revoke_grace_hours = optional(number, 24)
    scopes             = optional(list(string))
    autoscope          = optional(bool)
    client_id          = optional(string)
    federated          = optional(bool, false)
    kind               = optional(string, "pat")
    service_principal  = optional(string)
    key_vault          = optional(string, "default")
    keep_while_used    = optional(bool)
  }))
  nullable = false

  validation {
    condition     = length(var.targets) > 0
    error_message = "targets: configure at least one target."
  }

  validation {
    condition     = alltrue([for t in var.targets : can(regex("^[a-z0-9][a-z0-9-]{0,62}$", t.name))])
    error_message = join("; ", [for i, t in var.targets : format("targets[%d].name: %q is not a valid target name (^[a-z0-9][a-z0-9-]{0,62}$)", i, t.name) if !can(regex("^[a-z0-9][a-z0-9-]{0,62}$", t.name))])
  }

  validation {
    condition     = length(distinct([for t in var.targets : t.name])) == length(var.targets)
    error_message = "targets[*].name: target names must be unique; duplicated: ${jsonencode(distinct([for i, t in var.targets : t.name if index([for u in var.targets : u.name], t.name) != i]))}."
  }

  validation {
    condition     = alltrue([for t in var.targets : can(regex("^[0-9a-zA-Z-]{1,127}$", t.secret_name))])
    error_message = join("; ", [for i, t in var.targets : format("targets[%d].secret_name: %q is not a valid Key Vault secret name (^[0-9a-zA-Z-]{1,127}$)", i, t.secret_name) if !can(regex("^[0-9a-zA-Z-]{1,127}$", t.secret_name))])
  }

  validation {
    # Key Vault secret names are case-insensitive: two targets must never write the same
    # secret of the same vault.
    condition     = length(distinct([for t in var.targets : "${t.key_vault}/${lower(t.secret_name)}"])) == length(var.targets)
    error_message = "targets[*].secret_name: secret names must be unique (case-insensitive) within a vault; duplicated: ${jsonencode(distinct([for i, t in var.targets : "${t.key_vault}/${t.secret_name}" if index([for u in var.targets : "${u.key_vault}/${lower(u.secret_name)}"], "${t.key_vault}/${lower(t.secret_name)}") != i]))}."
  }

  validation {
    condition     = alltrue([for t in var.targets : t.key_vault == "default" || contains(keys(var.existing_key_vault_urls), t.key_vault)])
    error_message = join("; ", [for i, t in var.targets : format("targets[%d].key_vault: %q is neither \"default\" (the vault created here) nor a key of existing_key_vaults (known: %s)", i, t.key_vault, jsonencode(sort(keys(var.existing_key_vault_urls)))) if !(t.key_vault == "default" || contains(keys(var.existing_key_vault_urls), t.key_vault))])
  }

  validation {
    # Contract section 10, "Usage": keep_while_used is a PAT setting, and the usage lookup
    # runs as the identity that lists the target's tokens, which must be a workspace admin.
    # For a client_id target that is the app's service principal, which this configuration
    # never makes an admin (contract section 8: a plain member), so it is refused here.
    condition     = alltrue([for t in var.targets : t.keep_while_used == null || (t.kind == "pat" && !t.federated)])
    error_message = join("; ", [for i, t in var.targets : format("targets[%d].keep_while_used: only for kind = \"pat\" targets without client_id (the usage lookup needs the token owner to be a workspace admin; a client_id target's app principal is never made one)", i) if !(t.keep_while_used == null || (t.kind == "pat" && !t.federated))])
  }

  validation {
    condition     = alltrue([for t in var.targets : t.lifetime_days != null && floor(t.lifetime_days) == t.lifetime_days && t.lifetime_days >= 1 && t.lifetime_days <= 730])
    error_message = join("; ", [for i, t in var.targets : format("targets[%d].lifetime_days: %s is not an integer in 1..730", i, jsonencode(t.lifetime_days)) if !(t.lifetime_days != null && floor(coalesce(t.lifetime_days, 0.5)) == coalesce(t.lifetime_days, 0.5) && coalesce(t.lifetime_days, 0) >= 1 && coalesce(t.lifetime_days, 0) <= 730)])
  }

  validation {
    condition     = alltrue([for t in var.targets : t.renew_before_days != null && floor(t.renew_before_days) == t.renew_before_days && t.renew_before_days > 0 && t.renew_before_days < coalesce(t.lifetime_days, 90)])
    error_message = join("; ", [for i, t in var.targets : format("targets[%d].renew_before_days: %s must be an integer with 0 < renew_before_days < lifetime_days (%s)", i, jsonencode(t.renew_before_days), jsonencode(t.lifetime_days)) if !(t.renew_before_days != null && floor(coalesce(t.renew_before_days, 0.5)) == coalesce(t.renew_before_days, 0.5) && coalesce(t.renew_before_days, 0) > 0 && coalesce(t.renew_before_days, 0) < coalesce(t.lifetime_days, 90))])
  }

  validation {
    condition     = alltrue([for t in var.targets : t.revoke_grace_hours != null && floor(t.revoke_grace_hours) == t.revoke_grace_hours && t.revoke_grace_hours >= 0 && t.revoke_grace_hours <= 720])
    error_message = join("; ", [for i, t in var.targets : format("targets[%d].revoke_grace_hours: %s is not an integer in 0..720", i, jsonencode(t.revoke_grace_hours)) if !(t.revoke_grace_hours != null && floor(coalesce(t.revoke_grace_hours, 0.5)) == coalesce(t.revoke_grace_hours, 0.5) && coalesce(t.revoke_grace_hours, -1) >= 0 && coalesce(t.revoke_grace_hours, 721) <= 720)])
  }

  validation {
    condition     = alltrue([for t in var.targets : t.scopes == null || (length(coalesce(t.scopes, [])) > 0 && alltrue([for s in coalesce(t.scopes, []) : can(regex("^[^\\s,]+$", s))]))])
    error_message = join("; ", [for i, t in var.targets : format("targets[%d].scopes: %s must be omitted or a non-empty list of scope names without spaces or commas", i, jsonencode(t.scopes)) if !(t.scopes == null || (length(coalesce(t.scopes, [])) > 0 && alltrue([for s in coalesce(t.scopes, []) : can(regex("^[^\\s,]+$", s))])))])
  }

  validation {
    # Contract section 2/8: client_id is a GUID (compared and tagged in lower case).
    condition     = alltrue([for t in var.targets : t.client_id == null || can(regex("^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$", coalesce(t.client_id, "-")))])
    error_message = join("; ", [for i, t in var.targets : format("targets[%d].client_id: %q is not a GUID (the application (client) id of an Entra app registration)", i, t.client_id) if !(t.client_id == null || can(regex("^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$", coalesce(t.client_id, "-"))))])
  }

  validation {
    condition     = alltrue([for t in var.targets : t.client_id == null || t.federated])
    error_message = join("; ", [for i, t in var.targets : format("targets[%d].federated: must be true when client_id is set", i) if !(t.client_id == null || t.federated)])
  }

  validation {
    # Contract section 2/9: kind is "pat" or "sp_oauth_secret".
    condition     = alltrue([for t in var.targets : contains(["pat", "sp_oauth_secret"], t.kind)])
    error_message = join("; ", [for i, t in var.targets : format("targets[%d].kind: %q must be \"pat\" or \"sp_oauth_secret\"", i, t.kind) if !contains(["pat", "sp_oauth_secret"], t.kind)])
  }

  validation {
    # Section 9: service_principal is required with kind = "sp_oauth_secret" ...
    condition     = alltrue([for t in var.targets : t.kind != "sp_oauth_secret" || t.service_principal != null])
    error_message = join("; ", [for i, t in var.targets : format("targets[%d].service_principal: required with kind = \"sp_oauth_secret\" (the application id of the Databricks service principal whose OAuth secret the target holds)", i) if t.kind == "sp_oauth_secret" && t.service_principal == null])
  }

  validation {
    # ... and refused with any other kind.
    condition     = alltrue([for t in var.targets : t.kind == "sp_oauth_secret" || t.service_principal == null])
    error_message = join("; ", [for i, t in var.targets : format("targets[%d].service_principal: only valid with kind = \"sp_oauth_secret\" (this target's kind is %q)", i, t.kind) if t.kind != "sp_oauth_secret" && t.service_principal != null])
  }

  validation {
    # A GUID, compared and tagged in lower case (databricks-client-id).
    condition     = alltrue([for t in var.targets : t.service_principal == null || can(regex("^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$", coalesce(t.service_principal, "-")))])
    error_message = join("; ", [for i, t in var.targets : format("targets[%d].service_principal: %q is not a GUID (the application id of a Databricks service principal)", i, t.service_principal) if !(t.service_principal == null || can(regex("^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$", coalesce(t.service_principal, "-"))))])
  }

  validation {
    # Section 9: scopes, autoscope and client_id are PAT settings; an OAuth secret has none.
    condition     = alltrue([for t in var.targets : t.kind != "sp_oauth_secret" || (t.scopes == null && t.autoscope == null && t.client_id == null && !t.federated)])
    error_message = join("; ", flatten([for i, t in var.targets : [for f, set in { scopes = t.scopes != null, autoscope = t.autoscope != null, client_id = t.client_id != null || t.federated } : format("targets[%d].%s: not allowed with kind = \"sp_oauth_secret\" (an OAuth secret has no scopes, autoscope or client_id)", i, f) if set] if t.kind == "sp_oauth_secret"]))
  }

  validation {
    condition     = alltrue([for t in var.targets : contains(keys(var.workspaces), t.workspace)])
    error_message = join("; ", [for i, t in var.targets : format("targets[%d].workspace: %q is not a configured workspace (known: %s)", i, t.workspace, jsonencode(sort(keys(var.workspaces)))) if !contains(keys(var.workspaces), t.workspace)])
  }
}

variable "workspaces" {
  description = <<-EOT
    The Databricks workspaces the targets may name, by key:
      workspace_url - https:// URL of the workspace (bare hosts are given https://)
      resource_id   - ARM id of the Microsoft.Databricks/workspaces resource
      access_mode   - "azure_contributor": the identity holds Contributor on the workspace
                      resource and pat-rotator sends the management-token headers
                      (the target gets workspace_resource_id);
                      "workspace_service_principal": the identity is a workspace service
                      principal with token CAN_USE (no workspace_resource_id).
  EOT
  type = map(object({
    workspace_url = string
    resource_id   = string
    access_mode   = string
  }))
  nullable = false

  validation {
    condition     = alltrue([for k, w in var.workspaces : contains(["azure_contributor", "workspace_service_principal"], w.access_mode)])
    error_message = join("; ", [for k, w in var.workspaces : format("workspaces[%q].access_mode: %q must be \"azure_contributor\" or \"workspace_service_principal\"", k, w.access_mode) if !contains(["azure_contributor", "workspace_service_principal"], w.access_mode)])
  }

  validation {
    condition     = alltrue([for k, w in var.workspaces : can(regex("(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\\.Databricks/workspaces/[^/]+$", w.resource_id))])
    error_message = join("; ", [for k, w in var.workspaces : format("workspaces[%q].resource_id: %q is not the ARM id of a Microsoft.Databricks/workspaces resource", k, w.resource_id) if !can(regex("(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\\.Databricks/workspaces/[^/]+$", w.resource_id))])
  }

  validation {
    # Contract §2: https:// URL or a bare host (meaning https). Plain http is only for
    # loopback emulators and never valid for a deployed Function App.
    condition     = alltrue([for k, w in var.workspaces : can(regex("^(https://)?[A-Za-z0-9.-]+(:[0-9]+)?/?$", w.workspace_url))])
    error_message = join("; ", [for k, w in var.workspaces : format("workspaces[%q].workspace_url: %q must be an https:// URL or a bare host name", k, w.workspace_url) if !can(regex("^(https://)?[A-Za-z0-9.-]+(:[0-9]+)?/?$", w.workspace_url))])
  }
}

variable "key_vault_url" {
  description = "https:// URL of the vault \"default\": the one the pat-rotator module creates, which holds the secret of every target whose key_vault is \"default\"."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^https://[A-Za-z0-9.-]+/?$", var.key_vault_url))
    error_message = "key_vault_url: ${jsonencode(var.key_vault_url)} must be an https:// URL."
  }
}

variable "existing_key_vault_urls" {
  description = "https:// URLs of the existing vaults targets may name in key_vault, by key (the key \"default\" is the vault in key_vault_url)."
  type        = map(string)
  default     = {}
  nullable    = false

  validation {
    condition     = !contains(keys(var.existing_key_vault_urls), "default") && alltrue([for k, u in var.existing_key_vault_urls : can(regex("^https://[A-Za-z0-9.-]+/?$", u))])
    error_message = "existing_key_vault_urls: the key \"default\" is reserved, and every value must be an https:// URL of a vault."
  }
}
