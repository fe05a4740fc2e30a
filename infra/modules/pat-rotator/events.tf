# Key Vault events (contract section 10): every vault of the targets publishes to an Event
# Grid system topic, and the function SecretEvent is subscribed to each topic for
#
#   Microsoft.KeyVault.SecretNearExpiry / SecretExpired   -> rotate when exp is within 30 days
#   Microsoft.KeyVault.SecretNewVersionCreated             -> evaluate the target (unforced)
#
# so that a secret about to expire, or replaced by hand, is handled within minutes instead
# of at the next RotatePat run. Two stages:
#
#  1. the system topics (always): one per vault, unless var.existing_system_topic_ids names
#     the vault's topic (Event Grid allows one system topic per source);
#  2. the event subscriptions (var.enable_event_subscriptions, default false): Event Grid
#     validates an Azure Function endpoint when the subscription is created, so the code
#     with SecretEvent must be deployed first (a later apply, or this one with
#     deploy_package = true, which they wait for).
#
# Delivery: at most 3 attempts within one hour (retry_policy), then the event is
# dead-lettered to a container of the host storage account. That account takes no shared
# key or SAS, so dead-lettering authenticates with the topic's system-assigned identity,
# which holds Storage Blob Data Contributor on that one container. Delivery to the function
# itself needs no identity: Event Grid fetches the function's key through Azure Resource
# Manager when the subscription is created (with the deploying identity's rights) and
# keeps it current.

locals {
  secret_event_types = [
    "Microsoft.KeyVault.SecretNearExpiry",
    "Microsoft.KeyVault.SecretExpired",
    "Microsoft.KeyVault.SecretNewVersionCreated",
  ]

  # Vaults whose topic is created here, and the existing topics named for the others (an
  # entry for a vault no target uses is ignored).
  created_topic_vault_keys = toset([for k in keys(local.vaults) : k if !contains(keys(var.existing_system_topic_ids), k)])
  existing_topics = {
    for k, id in var.existing_system_topic_ids : k => {
      id                  = id
      name                = element(split("/", id), 8)
      resource_group_name = element(split("/", id), 4)
    } if contains(keys(local.vaults), k)
  }
  system_topics = merge(
    { for k, t in azurerm_eventgrid_system_topic.key_vault : k => { id = t.id, name = t.name, resource_group_name = t.resource_group_name } },
    local.existing_topics,
  )
}

resource "azurerm_eventgrid_system_topic" "key_vault" {
  for_each = local.created_topic_vault_keys

  name                = "${var.name_prefix}-evgt-${each.key}-${local.suffix}"
  resource_group_name = local.resource_group_name
  location            = local.vaults[each.key].location
  source_resource_id  = local.vaults[each.key].id
  topic_type          = "Microsoft.KeyVault.vaults"

  # Dead-lettering into the key-less host storage authenticates with this identity.
  identity {
    type = "SystemAssigned"
  }

  tags = local.tags

  lifecycle {
    precondition {
      # Event Grid creates a system topic only in its source's subscription ("System
      # topics in Azure Event Grid"), and this module's azurerm provider serves one.
      condition     = local.vaults[each.key].subscription_id == lower(data.azurerm_client_config.current.subscription_id)
      error_message = "Key Vault events for vault \"${each.key}\": its system topic must be in the vault's subscription (${local.vaults[each.key].subscription_id}), but this configuration's azurerm provider serves ${data.azurerm_client_config.current.subscription_id}. Create the topic in that subscription and name it in existing_system_topic_ids[\"${each.key}\"]."
    }
  }
}

# An existing topic is read only for the second stage: its identity becomes the
# dead-letter writer.
data "azurerm_eventgrid_system_topic" "existing" {
  for_each = var.enable_event_subscriptions ? local.existing_topics : {}

  name                = each.value.name
  resource_group_name = each.value.resource_group_name
}

# The container Event Grid dead-letters to (blobs named after the subscription, one or
# more events per blob). The Function App identity can read it (Storage Blob Data Owner on
# the account, for the host); nobody else gets a role on it here.
resource "azurerm_storage_container" "dead_letter" {
  name                  = "eventgrid-dead-letter"
  storage_account_id    = azurerm_storage_account.host.id
  container_access_type = "private"

  #checkov:skip=CKV2_AZURE_21:Blob reads and writes of the host storage account, this container included, are logged by azurerm_monitor_diagnostic_setting.host_blob (StorageRead/StorageWrite to Log Analytics). The check wants azurerm_log_analytics_storage_insights, which needs the account key, and shared keys are disabled.
}

locals {
  # Per vault, the identity that writes its dead letters: the created topic's, or (second
  # stage) the existing topic's system-assigned one (null when it has none).
  dead_letter_writers = merge(
    { for k, t in azurerm_eventgrid_system_topic.key_vault : k => t.identity[0].principal_id },
    { for k, t in data.azurerm_eventgrid_system_topic.existing : k => try([for i in t.identity : i.principal_id if strcontains(i.type, "SystemAssigned")][0], null) },
  )
}

resource "azurerm_role_assignment" "dead_letter_writer" {
  for_each = local.dead_letter_writers

  scope                = azurerm_storage_container.dead_letter.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = each.value
  principal_type       = "ServicePrincipal"
  description          = "pat-rotator: Event Grid dead-letters undeliverable Key Vault events of vault ${each.key}"

  lifecycle {
    precondition {
      condition     = each.value != null
      error_message = "existing_system_topic_ids[\"${each.key}\"]: that system topic has no system-assigned identity, which dead-lettering into the key-less host storage needs. Enable it (az eventgrid system-topic update --name <topic> --resource-group <group> --identity systemassigned) and apply again."
    }
  }
}

resource "azurerm_eventgrid_system_topic_event_subscription" "secret_event" {
  for_each = var.enable_event_subscriptions ? toset(keys(local.vaults)) : toset([])

  name                = "${local.names.function_app}-secret-events"
  system_topic        = local.system_topics[each.key].name
  resource_group_name = local.system_topics[each.key].resource_group_name

  included_event_types  = local.secret_event_types
  event_delivery_schema = "EventGridSchema"

  azure_function_endpoint {
    function_id                       = "${azurerm_function_app_flex_consumption.this.id}/functions/SecretEvent"
    max_events_per_batch              = 1
    preferred_batch_size_in_kilobytes = 64
  }

  # At most 3 delivery attempts within one hour (event_time_to_live is in minutes); a
  # failed run answers 500 (the failure alert fires), so retries are few: the next
  # RotatePat run is the backstop.
  retry_policy {
    max_delivery_attempts = 3
    event_time_to_live    = 60
  }

  dead_letter_identity {
    type = "SystemAssigned"
  }

  storage_blob_dead_letter_destination {
    storage_account_id          = azurerm_storage_account.host.id
    storage_blob_container_name = azurerm_storage_container.dead_letter.name
  }

  depends_on = [
    terraform_data.deploy_package,
    azurerm_role_assignment.dead_letter_writer,
  ]
}
