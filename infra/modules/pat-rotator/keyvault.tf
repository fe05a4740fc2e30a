# The vault that holds every target's PAT. RBAC authorization (no access policies),
# purge protection and soft delete are always on.

resource "azurerm_key_vault" "this" {
  name                = local.names.key_vault
  resource_group_name = local.resource_group_name
  location            = var.location
  tenant_id           = data.azurerm_client_config.current.tenant_id
  sku_name            = "standard"

  rbac_authorization_enabled    = true
  purge_protection_enabled      = true
  soft_delete_retention_days    = var.key_vault_soft_delete_retention_days
  public_network_access_enabled = true

  network_acls {
    bypass         = "AzureServices"
    default_action = "Allow"
  }

  tags = local.tags

  #checkov:skip=CKV_AZURE_109:The Flex Consumption app (no VNet integration here) and Data Factory reach the vault from shared Azure outbound addresses that are not "trusted services"; a Deny default would lock them out. Every data-plane call needs an Entra ID token and an RBAC role on this vault.
  #checkov:skip=CKV_AZURE_189:Same reason as CKV_AZURE_109: the public endpoint is needed without VNet integration; access is RBAC-only.
  #checkov:skip=CKV2_AZURE_32:Private endpoints need a VNet-integrated app; not part of this configuration (see CKV_AZURE_109).
}
