# Inputs of the root configuration an operator applies. Each is forwarded unchanged to
# the module (modules/pat-rotator), which validates it; subscription_id and azure_cloud
# also configure the providers here. infra/README.md, "Inputs", has them as a table;
# infra/tests/test_module_split.py keeps this list, its types and defaults equal to the
# module's.

variable "subscription_id" {
  description = "Azure subscription to deploy into. null = take ARM_SUBSCRIPTION_ID from the environment."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------
# Where
# ---------------------------------------------------------------------------

variable "location" {
  description = "Azure region, e.g. \"westeurope\". It must offer the Flex Consumption plan (az functionapp list-flexconsumption-locations)."
  type        = string
  nullable    = false
}

variable "name_prefix" {
  description = "Short prefix for every resource name: 3-12 lowercase letters/digits, starting with a letter."
  type        = string
  nullable    = false
}

variable "name_suffix" {
  description = "Suffix that makes the global names (storage account, Key Vault, Function App) unique: 4-6 lowercase letters/digits. null = derived from the subscription, resource group and prefix. Set a new one to redeploy next to a soft-deleted vault."
  type        = string
  default     = null
}

variable "resource_group_name" {
  description = "Resource group for everything this configuration creates."
  type        = string
  nullable    = false
}

variable "create_resource_group" {
  description = "true: create resource_group_name. false: it already exists and is used as is."
  type        = bool
  default     = true
  nullable    = false
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
  nullable    = false
}

# ---------------------------------------------------------------------------
# Function App
# ---------------------------------------------------------------------------

variable "rotation_schedule" {
  description = "NCRONTAB schedule of the RotatePat timer ({second} {minute} {hour} {day} {month} {day-of-week}, UTC on Flex Consumption)."
  type        = string
  default     = "0 0 3 * * *"
  nullable    = false
}

variable "rust_log" {
  description = "RUST_LOG filter of the handler (contract section 2). null (default) = the setting is not set and the program's own default applies: info, with the Azure SDK, HTTP and server crates at warn. Set it only to debug (e.g. \"debug\" or \"info,pat_rotator=debug\")."
  type        = string
  default     = null
}

variable "log_format" {
  description = "PAT_LOG_FORMAT of the handler: \"json\" (default; one JSON object per line with flat keys timestamp, level, message, target, action, reason, code, token_id_prefix, invocation_id, which infra/queries/failed-invocation-logs.kql reads by key) or \"text\"."
  type        = string
  default     = "json"
  nullable    = false
}

variable "max_concurrency" {
  description = "PAT_MAX_CONCURRENCY: targets rotated at once (contract §2)."
  type        = number
  default     = 8
  nullable    = false
}

variable "instance_memory_in_mb" {
  description = "Flex Consumption instance memory (MB). 2048 is the platform default; the handler is a small native binary, so 512 is enough where that size is offered."
  type        = number
  default     = 2048
  nullable    = false
}

variable "maximum_instance_count" {
  description = "Flex Consumption scale-out limit. Default 40: the lowest maximum Azure accepts in most regions. A lower value (down to 1, which azurerm >= 4.58 allows) only where your region accepts it (Azure/azure-functions-host#10523); the timer runs on one instance anyway."
  type        = number
  default     = 40
  nullable    = false
}

variable "azure_cloud" {
  description = "Azure cloud: \"public\", \"usgovernment\" or \"china\". Chooses the Entra ID authority and the token-exchange audience of the federated credentials (api://AzureADTokenExchange, ...USGov, ...China) and sets AZURE_AUTHORITY_HOST outside the public cloud."
  type        = string
  default     = "public"
  nullable    = false
}

# ---------------------------------------------------------------------------
# Alarm (monitoring.tf)
# ---------------------------------------------------------------------------

variable "alert_email_addresses" {
  description = "E-mail addresses the alarm notifies (action group e-mail receivers, common alert schema). Empty, together with alert_webhook_urls, = the alerts still fire (Azure portal > Monitor > Alerts) but notify nobody."
  type        = list(string)
  default     = []
  nullable    = false
}

variable "alert_webhook_urls" {
  description = "HTTPS webhooks the alarm posts to (common alert schema), e.g. a Teams/Slack/PagerDuty/Opsgenie endpoint. The URL is stored in the Terraform state and in the action group."
  type        = list(string)
  default     = []
  nullable    = false
}

variable "alert_no_success_hours" {
  description = "Alarm when no RotatePat invocation succeeded for this many hours: the schedule period plus a margin (26 for the daily default schedule). The alert's window is P2D (the longest azurerm accepts), so at most 48."
  type        = number
  default     = 26
  nullable    = false
}

variable "log_retention_days" {
  description = "Retention of the Log Analytics workspace behind Application Insights."
  type        = number
  default     = 90
  nullable    = false
}

# ---------------------------------------------------------------------------
# Key Vault
# ---------------------------------------------------------------------------

variable "key_vault_soft_delete_retention_days" {
  description = "Soft-delete retention of the vault (purge protection is always on)."
  type        = number
  default     = 90
  nullable    = false
}

variable "key_vault_role" {
  description = "The Function App identity's role on every vault of the targets: \"custom\" (default) = a role definition created here with exactly getSecret, readMetadata (which lists a secret's versions) and setSecret, assignable only on those vaults; creating it needs Owner or User Access Administrator (Microsoft.Authorization/roleDefinitions/write). \"builtin\" = Key Vault Secrets Officer, the fallback where the deployer may not create role definitions; it also allows delete, backup, restore, recover and purge (no built-in role writes without delete)."
  type        = string
  default     = "custom"
  nullable    = false
}

variable "existing_key_vaults" {
  description = <<-EOT
    Existing Key Vaults that targets may name in `key_vault`, by key (the key "default" is
    reserved for the vault created here, which every target without key_vault uses). Each
    must use Azure RBAC authorization.
      resource_id - ARM id of the Microsoft.KeyVault/vaults resource
      location    - its Azure region: its Event Grid system topic must be in the vault's
                    region (and subscription)
    Only vaults that some target names are used: the Function App identity gets the vault
    role (key_vault_role) there and Key Vault events are subscribed there (a system topic
    per vault, unless existing_system_topic_ids names one). The vault URL is
    https://<name>.<Key Vault suffix of azure_cloud>.
  EOT
  type = map(object({
    resource_id = string
    location    = string
  }))
  default  = {}
  nullable = false
}

# ---------------------------------------------------------------------------
# Key Vault events (contract section 10): Event Grid -> SecretEvent
# ---------------------------------------------------------------------------

variable "existing_system_topic_ids" {
  description = <<-EOT
    Key Vault events: an Event Grid system topic (topic type Microsoft.KeyVault.vaults) is
    created for each vault the targets use ("default" = the vault created here, and each
    key of existing_key_vaults a target names), unless this map names that vault's
    existing system topic by ARM id (vault key => /subscriptions/.../providers/
    Microsoft.EventGrid/systemTopics/<name>). A vault has at most one system topic (Event
    Grid refuses a second one), so a vault that already has one must be listed here.
    A topic listed here needs a system-assigned identity: it dead-letters with it, and
    gets Storage Blob Data Contributor on the dead-letter container.
  EOT
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "enable_event_subscriptions" {
  description = "Second stage of Key Vault events: subscribe the function SecretEvent to each vault's system topic (SecretNearExpiry, SecretExpired, SecretNewVersionCreated; at most 3 deliveries within one hour; dead-lettering to a container of the host storage). Default false: Event Grid validates the endpoint when the subscription is created, so SecretEvent must already be deployed (a package with SecretEvent/). Set true in a second apply after the code is deployed (or in the same apply as deploy_package = true, which the subscriptions wait for)."
  type        = bool
  default     = false
  nullable    = false
}

# ---------------------------------------------------------------------------
# Databricks workspaces
# ---------------------------------------------------------------------------

variable "new_databricks_workspace" {
  description = <<-EOT
    Create a Databricks workspace in the resource group (null = do not create one).
    Targets refer to it as workspace = "new".
      name                        - workspace name (default "<prefix>-dbw-<suffix>")
      sku                         - "premium" (token management needs Premium) or "trial"
      managed_resource_group_name - default "<resource group>-dbw-managed"
      access_mode                 - "workspace_service_principal" (default, least privilege:
                                    the identity is a plain workspace member whose group has
                                    token CAN_USE, set here because a new workspace's tokens
                                    ACL names nobody else) or "azure_contributor" (Contributor
                                    on the workspace resource: workspace admin, and the power
                                    to change or delete the workspace). See infra/README.md,
                                    "Databricks access modes".
  EOT
  type = object({
    name                        = optional(string)
    sku                         = optional(string, "premium")
    managed_resource_group_name = optional(string)
    access_mode                 = optional(string, "workspace_service_principal")
  })
  default = null
}

variable "existing_databricks_workspaces" {
  description = <<-EOT
    Existing Databricks workspaces, by a key that targets use in `workspace`:
      resource_id   - ARM id of the Microsoft.Databricks/workspaces resource (required)
      workspace_url - https://adb-....azuredatabricks.net; null = read from the resource
                      (which must then be in the provider's subscription)
      access_mode   - "workspace_service_principal" (default, least privilege): Terraform,
                      running as a workspace admin there, adds the identity as a service
                      principal to the group "pat-rotator" and adds the group's token
                      CAN_USE to the workspace's token permissions (one added entry,
                      nothing removed; scripts/grant-token-use.sh); no Azure role on the
                      workspace. At most one workspace (a new one included) can use it:
                      the databricks provider serves one workspace.
                      "azure_contributor": Contributor on the workspace resource
                      (management-token headers): workspace admin and the power to change
                      or delete the workspace.
    The key "new" is reserved for new_databricks_workspace.
  EOT
  type = map(object({
    resource_id   = string
    workspace_url = optional(string)
    access_mode   = optional(string, "workspace_service_principal")
  }))
  default  = {}
  nullable = false
}

variable "databricks_token_usage_extra_acl" {
  description = <<-EOT
    Only with a workspace in "workspace_service_principal" mode and manage_databricks_token_permissions = true:
    further entries of that workspace's token-usage ACL. databricks_permissions for
    authorization = "tokens" is AUTHORITATIVE: principals not listed here (or in the
    pat-rotator group) lose token access and their tokens are revoked. List everyone
    who must keep CAN_USE, e.g. { group_name = "users", permission_level = "CAN_USE" }.
  EOT
  type = list(object({
    group_name             = optional(string)
    user_name              = optional(string)
    service_principal_name = optional(string)
    permission_level       = string
  }))
  default  = []
  nullable = false
}

variable "manage_databricks_token_permissions" {
  description = "Manage the whole token-usage ACL of the databricks provider's existing workspace here. Default false (safe on an existing workspace): the group \"pat-rotator\" gets CAN_USE by one added entry (scripts/grant-token-use.sh), and nothing else in the ACL changes. true = databricks_permissions, which is AUTHORITATIVE: everyone not in the group or in databricks_token_usage_extra_acl loses token access and their tokens are revoked."
  type        = bool
  default     = false
  nullable    = false
}

# ---------------------------------------------------------------------------
# Targets (PAT_TARGETS, or PAT_TARGETS_BLOB with targets_source = "blob")
# ---------------------------------------------------------------------------

variable "targets" {
  description = <<-EOT
    The PATs to keep in Key Vault, one object per target (see modules/targets for the
    validation rules, which mirror contract §2):
      name               - ^[a-z0-9][a-z0-9-]{0,62}$, unique
      workspace          - "new" or a key of existing_databricks_workspaces
      secret_name        - Key Vault secret name, ^[0-9a-zA-Z-]{1,127}$, unique
      lifetime_days      - 1..730 (default 90)
      renew_before_days  - 0 < x < lifetime_days (default 30)
      revoke_grace_hours - 0..720 (default 24)
      scopes             - optional list of token scopes
      autoscope          - optional bool: autoscope_enabled of token create (unset sends nothing)
      client_id          - optional: the PAT belongs to this existing Entra app
                           registration (GUID), which must trust the Function App's
                           identity (output federated_credential); contract section 8
      create_app_registration
                         - optional, default false: create an app registration, its
                           service principal and the federated credential for this
                           target, and use its client id (needs directory rights)
      kind               - "pat" (default) or "sp_oauth_secret": the target holds an OAuth
                           secret of a Databricks service principal (contract section 9);
                           the identity is then made a workspace admin in that workspace
      service_principal  - with kind = "sp_oauth_secret" (required there, refused
                           otherwise): that service principal's application id (GUID)
      key_vault          - "default" (the vault created here) or a key of
                           existing_key_vaults: where the target's secret lives; secret
                           names are unique per vault
      keep_while_used    - optional bool, kind "pat" without client_id only: a superseded
                           token still in use is kept past its grace (contract section
                           10, "Usage"); the lookup is admin-only, so the identity is then
                           made a workspace admin in that workspace
  EOT
  type = list(object({
    name                    = string
    workspace               = string
    secret_name             = string
    lifetime_days           = optional(number, 90)
    renew_before_days       = optional(number, 30)
    revoke_grace_hours      = optional(number, 24)
    scopes                  = optional(list(string))
    autoscope               = optional(bool)
    client_id               = optional(string)
    create_app_registration = optional(bool, false)
    kind                    = optional(string, "pat")
    service_principal       = optional(string)
    key_vault               = optional(string, "default")
    keep_while_used         = optional(bool)
  }))
  nullable = false
}

variable "targets_source" {
  description = <<-EOT
    Where the Function App reads its targets (contract section 2):
      "setting" (default) - the app setting PAT_TARGETS holds their JSON (Linux caps one
                            setting at 128 KiB: several hundred targets)
      "blob"              - the same JSON is written to a blob of a storage account of its
                            own (container "pat-targets"); the app settings hold
                            PAT_TARGETS_BLOB (its https URL, no SAS) and PAT_ALLOWED_VAULTS
                            (the targets' vault hosts). The Function App identity gets
                            Storage Blob Data Reader on that container and nobody gets a
                            data role there from this configuration: the deploying identity
                            writes the blob with a data role it holds already (Storage Blob
                            Data Contributor on the account or above). Whoever can write
                            that blob decides which vaults receive new credentials (within
                            PAT_ALLOWED_VAULTS): see infra/README.md.
  EOT
  type        = string
  default     = "setting"
  nullable    = false
}

# ---------------------------------------------------------------------------
# Deployment and first provisioning
# ---------------------------------------------------------------------------

variable "package_path" {
  description = "The zip built by scripts/package.sh. null = <repo>/dist/pat-rotator.zip."
  type        = string
  default     = null
}

variable "deploy_package" {
  description = "Deploy the package to the Function App during apply (runs infra/scripts/deploy-package.sh, which needs the Azure CLI logged in). false = your pipeline deploys the code (see README)."
  type        = bool
  default     = true
  nullable    = false
}

variable "provision_on_apply" {
  description = "After deployment, call ProvisionPat once per target so that every secret holds a working PAT when apply returns. Needs deploy_package = true."
  type        = bool
  default     = true
  nullable    = false
}

variable "provision_timeout_seconds" {
  description = "Upper bound on how long apply waits, per target, for ProvisionPat to succeed (role assignments and the deployment take minutes to propagate)."
  type        = number
  default     = 1200
  nullable    = false
}
