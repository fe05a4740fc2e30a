# Self-test fixture of tfschema.py: errors inside nested and dynamic blocks, a missing
# required block, a read-only argument, an unknown type, an undeclared resource, and a
# bad path into a nested block.
resource "azurerm_function_app_flex_consumption" "this" {
  name                        = "func"
  resource_group_name         = "rg"
  location                    = "westeurope"
  service_plan_id             = "/x"
  runtime_name                = "custom"
  runtime_version             = "1.0"
  storage_container_type      = "blobContainer"
  storage_container_endpoint  = "https://x.blob.core.windows.net/c"
  storage_authentication_type = "SystemAssignedIdentity"
  default_hostname            = "set-by-azure"

  identity {
    type         = "SystemAssigned"
    principal_ix = "x"
  }
}

resource "azurerm_monitor_action_group" "this" {
  name                = "ag"
  resource_group_name = "rg"
  short_name          = "ag"

  dynamic "email_reciever" {
    for_each = ["a@example.com"]
    content {
      name          = "x"
      email_address = email_reciever.value
    }
  }

  dynamic "webhook_receiver" {
    for_each = ["https://example.com"]
    content {
      name = "x"
      uri  = webhook_receiver.value
    }
  }
}

resource "azurerm_keyvault" "typo" {
  name = "kv"
}

output "principal" {
  value = azurerm_function_app_flex_consumption.this.identity[0].principal_idd
}

output "undeclared" {
  value = azurerm_storage_account.missing.id
}
