# Self-test fixture of tfschema.py: references to attributes that do not exist
# (Key Vault exposes vault_uri, not vault_url; identity has principal_id, not object_id).
resource "azurerm_user_assigned_identity" "app" {
  name                = "id-app"
  resource_group_name = "rg"
  location            = "westeurope"
}

resource "azurerm_key_vault" "this" {
  name                = "kv"
  resource_group_name = "rg"
  location            = "westeurope"
  tenant_id           = azurerm_user_assigned_identity.app.tenant_id
  sku_name            = "standard"
}

output "url" {
  value = azurerm_key_vault.this.vault_url
}

output "principal" {
  value = azurerm_user_assigned_identity.app.object_id
}
