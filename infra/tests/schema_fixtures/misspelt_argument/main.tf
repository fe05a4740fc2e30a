# Self-test fixture of tfschema.py: a misspelt argument (purge_protection_enable).
resource "azurerm_key_vault" "this" {
  name                    = "kv"
  resource_group_name     = "rg"
  location                = "westeurope"
  tenant_id               = "00000000-0000-0000-0000-000000000000"
  sku_name                = "standard"
  purge_protection_enable = true
}
