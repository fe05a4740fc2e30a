# The vault "default", which holds the secret of every target without key_vault. RBAC
# authorization (no access policies), purge protection and soft delete are always on.
# Targets may also name existing vaults (var.existing_key_vaults); see the locals below.

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

locals {
  # Every vault the targets use, by key: "default" is the vault above (always configured),
  # the others are the existing_key_vaults some target names. Keys are known at plan time;
  # an existing vault's URL is derived from its name (contract section 2: KEY_VAULT_NAME ->
  # https://{name}.{the cloud's Key Vault suffix}), so it needs no read of the vault, which
  # may live in another subscription.
  target_key_vault         = { for t in var.targets : t.name => t.key_vault }
  used_existing_vault_keys = toset([for t in var.targets : t.key_vault if t.key_vault != "default"])
  existing_vaults = {
    for k, v in var.existing_key_vaults : k => {
      id              = v.resource_id
      location        = v.location
      url             = "https://${lower(element(split("/", v.resource_id), 8))}.${local.cloud.key_vault_suffix}"
      subscription_id = lower(element(split("/", v.resource_id), 2))
    } if contains(local.used_existing_vault_keys, k)
  }
  vaults = merge(
    { default = { id = azurerm_key_vault.this.id, location = var.location, subscription_id = lower(data.azurerm_client_config.current.subscription_id) } },
    { for k, v in local.existing_vaults : k => { id = v.id, location = v.location, subscription_id = v.subscription_id } },
  )
}
