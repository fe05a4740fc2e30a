# Self-test fixture of tfschema.py: valid against azurerm 4.79.0 (0 errors expected).
resource "azurerm_user_assigned_identity" "app" {
  name                = "id-app"
  resource_group_name = "rg"
  location            = "westeurope"
}

resource "azurerm_key_vault" "this" {
  count               = 1
  name                = "kv"
  resource_group_name = "rg"
  location            = "westeurope"
  tenant_id           = data.azurerm_client_config.current.tenant_id
  sku_name            = "standard"

  dynamic "network_acls" {
    for_each = [1]
    content {
      bypass         = "AzureServices"
      default_action = "Allow"
    }
  }

  lifecycle {
    prevent_destroy = false
  }
}

resource "azurerm_role_assignment" "kv" {
  scope                = azurerm_key_vault.this[0].id
  role_definition_name = "Key Vault Secrets Officer"
  principal_id         = azurerm_user_assigned_identity.app.principal_id
  depends_on           = [azurerm_user_assigned_identity.app]
}

data "azurerm_client_config" "current" {}

output "vault" {
  value = "${azurerm_key_vault.this[0].vault_uri}/secrets/${azurerm_key_vault.this[0].network_acls[0].bypass}"
}
