# A PAT per service principal (contract section 8): for each target with
# create_app_registration = true, an Entra app registration, its service principal, and
# a federated identity credential by which the app trusts the Function App's
# user-assigned identity. pat-rotator then presents a managed-identity token for the
# token-exchange audience as the client assertion of that app, so no client secret
# exists anywhere. Targets with an existing client_id need the same credential on their
# app (output federated_credential says what to configure).
#
# Needs directory rights for the deploying identity: Application Developer (or
# Application.ReadWrite.OwnedBy / Application.ReadWrite.All for a pipeline identity).

locals {
  app_registration_targets = toset([for t in var.targets : t.name if t.create_app_registration])

  # What every app registration that a target names must trust (Microsoft Graph
  # federatedIdentityCredential: issuer, subject, audiences).
  federated_credential = {
    issuer    = "${local.cloud.issuer_authority}/${data.azurerm_client_config.current.tenant_id}/v2.0"
    subject   = azurerm_user_assigned_identity.function.principal_id
    audiences = [local.cloud.token_exchange_audience]
  }

  # client_id of every federated target (existing or created), lower case.
  target_client_ids = {
    for t in var.targets : t.name => lower(t.create_app_registration ? azuread_application_registration.target[t.name].client_id : t.client_id)
    if t.client_id != null || t.create_app_registration
  }
}

resource "azuread_application_registration" "target" {
  for_each = local.app_registration_targets

  display_name = "pat-rotator ${each.key} (${local.names.function_app})"
  description  = "Databricks principal of pat-rotator target ${each.key}: its PATs are minted by the Function App ${local.names.function_app} through a federated credential (no client secret)."
  notes        = "Managed by Terraform (infra/entra.tf). Trusts the user-assigned identity ${local.names.identity}."
}

resource "azuread_service_principal" "target" {
  for_each = local.app_registration_targets

  client_id = azuread_application_registration.target[each.key].client_id
  notes     = "pat-rotator target ${each.key}"
}

resource "azuread_application_federated_identity_credential" "target" {
  for_each = local.app_registration_targets

  application_id = azuread_application_registration.target[each.key].id
  display_name   = "pat-rotator-${local.suffix}"
  description    = "The pat-rotator Function App's user-assigned identity ${local.names.identity}"
  issuer         = local.federated_credential.issuer
  subject        = local.federated_credential.subject
  audiences      = local.federated_credential.audiences

  #checkov:skip=CKV_AZURE_249:The check assumes a GitHub Actions issuer and wants a "repo:owner/name:..." subject; this credential's issuer is Entra ID itself ({authority}/{tenant}/v2.0) and its subject is exactly one managed identity's object id, which is the narrowest trust possible.
}
