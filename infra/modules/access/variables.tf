variable "workspace_modes" {
  description = "Access mode per workspace key: \"azure_contributor\" or \"workspace_service_principal\"."
  type        = map(string)
  nullable    = false

  validation {
    condition     = alltrue([for k, m in var.workspace_modes : contains(["azure_contributor", "workspace_service_principal"], m)])
    error_message = join("; ", [for k, m in var.workspace_modes : format("workspaces[%q].access_mode: %q must be \"azure_contributor\" or \"workspace_service_principal\"", k, m) if !contains(["azure_contributor", "workspace_service_principal"], m)])
  }

  validation {
    # One databricks provider configuration serves one workspace.
    condition     = length([for k, m in var.workspace_modes : k if m == "workspace_service_principal"]) <= 1
    error_message = "At most one Databricks workspace can use access_mode = \"workspace_service_principal\" (one databricks provider is configured); found: ${jsonencode(sort([for k, m in var.workspace_modes : k if m == "workspace_service_principal"]))}. A workspace created here uses it by default: set access_mode = \"azure_contributor\" for the others (or for the new one)."
  }
}

variable "new_workspace_created" {
  description = "Whether the workspace key \"new\" is a workspace this configuration creates."
  type        = bool
  nullable    = false
}

variable "targets" {
  description = "name, workspace key, kind (\"pat\" or \"sp_oauth_secret\"), federated (has or gets a client_id) and keep_while_used (needs the Token Management API) of every target."
  type = list(object({
    name            = string
    workspace       = string
    kind            = string
    federated       = bool
    keep_while_used = optional(bool, false)
  }))
  nullable = false
}

variable "manage_databricks_token_permissions" {
  description = "The operator's opt-in to an authoritative tokens ACL in an existing workspace."
  type        = bool
  nullable    = false
}
