resource "azurerm_log_analytics_workspace" "this" {
  name                = local.names.logs
  resource_group_name = local.resource_group_name
  location            = var.location
  sku                 = "PerGB2018"
  retention_in_days   = var.log_retention_days
  tags                = local.tags
}

# Application Insights with local (instrumentation-key) authentication disabled: the
# Function App sends telemetry with its managed identity
# (APPLICATIONINSIGHTS_AUTHENTICATION_STRING = "Authorization=AAD" and the
# Monitoring Metrics Publisher role), so the connection string is no credential.
resource "azurerm_application_insights" "this" {
  name                         = local.names.insights
  resource_group_name          = local.resource_group_name
  location                     = var.location
  application_type             = "other"
  workspace_id                 = azurerm_log_analytics_workspace.this.id
  local_authentication_enabled = false
  tags                         = local.tags
}

# Audit trail: who read or changed a PAT secret (Key Vault AuditEvent), and every
# read/write/delete on the host storage (host keys, deployment package).
resource "azurerm_monitor_diagnostic_setting" "key_vault" {
  name                       = "pat-rotator-audit"
  target_resource_id         = azurerm_key_vault.this.id
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id

  enabled_log {
    category_group = "audit"
  }
}

resource "azurerm_monitor_diagnostic_setting" "host_blob" {
  name                       = "pat-rotator-audit"
  target_resource_id         = "${azurerm_storage_account.host.id}/blobServices/default"
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id

  enabled_log {
    category = "StorageRead"
  }
  enabled_log {
    category = "StorageWrite"
  }
  enabled_log {
    category = "StorageDelete"
  }
}

# targets_source = "blob": who read or wrote the targets blob (every change of the
# target list, by whom).
resource "azurerm_monitor_diagnostic_setting" "targets_blob" {
  count = var.targets_source == "blob" ? 1 : 0

  name                       = "pat-rotator-audit"
  target_resource_id         = "${azurerm_storage_account.targets[0].id}/blobServices/default"
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id

  enabled_log {
    category = "StorageRead"
  }
  enabled_log {
    category = "StorageWrite"
  }
  enabled_log {
    category = "StorageDelete"
  }
}

# ---------------------------------------------------------------------------
# The alarm: an action group and two log alerts on the RotatePat invocations in
# Application Insights (the `requests` table: one row per function invocation, with
# `success` false when the handler answered non-2xx, i.e. when any target failed;
# contract section 3). Keyed on the invocation result, not on log severity: the host
# logs every stderr line containing "warn" as a warning, and a failed target is a
# failed invocation whatever was logged.
# ---------------------------------------------------------------------------

locals {
  alert_receivers = length(var.alert_email_addresses) + length(var.alert_webhook_urls) > 0

  # The query that finds a failed invocation's log lines (queries/failed-invocation-logs.kql,
  # without its comment lines): the handler's lines reach Application Insights as console
  # lines of the host, without the invocation's operation_Id, so they are found by the
  # invocation id pat-rotator writes into every line.
  failed_invocation_query = join("\n", [for line in split("\n", trimspace(file("${path.module}/../../queries/failed-invocation-logs.kql"))) : line if !startswith(trimspace(line), "//")])
}

resource "azurerm_monitor_action_group" "alarm" {
  count = local.alert_receivers ? 1 : 0

  name                = local.names.action_group
  resource_group_name = local.resource_group_name
  short_name          = "patrotator" # at most 12 characters; shown in SMS/e-mail
  tags                = local.tags

  dynamic "email_receiver" {
    for_each = { for i, a in var.alert_email_addresses : tostring(i) => a }
    content {
      name                    = "email-${email_receiver.key}"
      email_address           = email_receiver.value
      use_common_alert_schema = true
    }
  }

  dynamic "webhook_receiver" {
    for_each = { for i, u in var.alert_webhook_urls : tostring(i) => u }
    content {
      name                    = "webhook-${webhook_receiver.key}"
      service_uri             = webhook_receiver.value
      use_common_alert_schema = true
    }
  }
}

# Any failed RotatePat invocation: every 15 minutes over the last hour; after firing,
# notifications are muted for an hour so one failure is reported once.
resource "azurerm_monitor_scheduled_query_rules_alert_v2" "rotation_failed" {
  name                = "${local.names.insights}-rotation-failed"
  resource_group_name = local.resource_group_name
  location            = var.location
  display_name        = "pat-rotator: a RotatePat run failed"
  description         = "A RotatePat invocation of ${local.names.function_app} failed (at least one target failed). The failed targets and their error codes are in that invocation's log lines, found by its InvocationId (not by operation_Id: the host records the handler's output without it). Run in Application Insights > Logs:\n\n${local.failed_invocation_query}"
  severity            = 1
  scopes              = [azurerm_application_insights.this.id]

  evaluation_frequency              = "PT15M"
  window_duration                   = "PT1H"
  mute_actions_after_alert_duration = "PT1H"
  auto_mitigation_enabled           = false

  criteria {
    query                   = <<-KQL
      requests
      | where name == "RotatePat" and success == false
    KQL
    time_aggregation_method = "Count"
    operator                = "GreaterThan"
    threshold               = 0

    failing_periods {
      minimum_failing_periods_to_trigger_alert = 1
      number_of_evaluation_periods             = 1
    }
  }

  dynamic "action" {
    for_each = azurerm_monitor_action_group.alarm
    content {
      action_groups = [action.value.id]
      custom_properties = {
        function_app = local.names.function_app
      }
    }
  }

  tags = local.tags
}

# No successful RotatePat within the schedule period plus a margin (default 26 h for the
# daily schedule). azurerm accepts window_duration values only up to P2D (and
# evaluation_frequency up to P1D), so the window is P2D and the query itself looks
# back alert_no_success_hours.
resource "azurerm_monitor_scheduled_query_rules_alert_v2" "rotation_missing" {
  name                = "${local.names.insights}-rotation-missing"
  resource_group_name = local.resource_group_name
  location            = var.location
  display_name        = "pat-rotator: no successful RotatePat for ${var.alert_no_success_hours} h"
  description         = "No RotatePat invocation of ${local.names.function_app} succeeded in the last ${var.alert_no_success_hours} hours (schedule ${var.rotation_schedule}): the timer did not run, or every run failed. Check the Function App is running and its recent invocations."
  severity            = 2
  scopes              = [azurerm_application_insights.this.id]

  evaluation_frequency    = "PT1H"
  window_duration         = "P2D"
  auto_mitigation_enabled = true

  criteria {
    query                   = <<-KQL
      requests
      | where timestamp > ago(${var.alert_no_success_hours}h)
      | where name == "RotatePat" and success == true
    KQL
    time_aggregation_method = "Count"
    operator                = "LessThan"
    threshold               = 1

    failing_periods {
      minimum_failing_periods_to_trigger_alert = 1
      number_of_evaluation_periods             = 1
    }
  }

  dynamic "action" {
    for_each = azurerm_monitor_action_group.alarm
    content {
      action_groups = [action.value.id]
      custom_properties = {
        function_app = local.names.function_app
      }
    }
  }

  tags = local.tags
}

# ---------------------------------------------------------------------------
# The workbook: per target, the last result, days left, failures over 30 days and
# superseded credentials still in use, from the handler's JSON log lines in traces
# (PAT_LOG_FORMAT=json). Its queries are files (queries/workbook-*.kql), so the same text
# is parsed and bound by Kusto.Language and evaluated by duckdb-kql on the real binary's
# output (infra/tests/test_workbook.py). Azure Monitor > Workbooks, or the Application
# Insights component > Workbooks.
# ---------------------------------------------------------------------------

locals {
  workbook = {
    version = "Notebook/1.0"
    items = [
      {
        type = 1
        name = "about"
        content = {
          json = "## pat-rotator: ${local.names.function_app}\nOne row per target from the handler's JSON log lines (PAT_LOG_FORMAT=json). **days_left**: whole days until the credential the last run reported expires (negative: expired). **failures_30d**: failed runs of the target (RotatePat, ProvisionPat, SecretEvent) in 30 days; a failed run's lines: queries/failed-invocation-logs.kql. **superseded_in_use**: superseded credentials kept in the last two days because a consumer still uses them (keep_while_used); the table below names them."
        }
      },
      {
        type = 3
        name = "targets"
        content = {
          version       = "KqlItem/1.0"
          title         = "Targets: last result, days left, failures (30 days), superseded credentials in use"
          query         = file("${path.module}/../../queries/workbook-targets.kql")
          size          = 0
          queryType     = 0
          resourceType  = "microsoft.insights/components"
          visualization = "table"
        }
      },
      {
        type = 3
        name = "superseded-in-use"
        content = {
          version       = "KqlItem/1.0"
          title         = "Superseded credentials still in use (keep_while_used)"
          query         = file("${path.module}/../../queries/workbook-superseded-in-use.kql")
          size          = 0
          queryType     = 0
          resourceType  = "microsoft.insights/components"
          visualization = "table"
          noDataMessage = "No superseded credential was kept for being in use in the last two days."
        }
      },
    ]
    fallbackResourceIds = [azurerm_application_insights.this.id]
    "$schema"           = "https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json"
  }
}

resource "azurerm_application_insights_workbook" "this" {
  # A workbook's name is a GUID; derived from names known at plan time, so it is stable.
  name                = uuidv5("url", "https://pat-rotator.invalid/${data.azurerm_client_config.current.subscription_id}/${lower(local.resource_group_name)}/${local.names.workbook}")
  resource_group_name = local.resource_group_name
  location            = var.location
  display_name        = "pat-rotator (${local.names.function_app})"
  description         = "pat-rotator: per target, the last result, days left, failures over 30 days and superseded credentials still in use."
  category            = "workbook"
  # azurerm: the source id must not contain upper-case letters.
  source_id = lower(azurerm_application_insights.this.id)
  data_json = jsonencode(local.workbook)
  tags      = local.tags
}
