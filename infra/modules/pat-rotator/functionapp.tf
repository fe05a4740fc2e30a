# The Function App: Linux, Flex Consumption (FC1), custom handler runtime, running as
# a user-assigned managed identity (azurerm_user_assigned_identity.function). Why Flex Consumption: see infra/README.md
# ("Hosting plan"); in short, Linux Consumption (Y1) is being retired
# (30 September 2028, no new features) and Elastic Premium bills always-on instances
# and keeps its content share on Azure Files with an account key.

resource "azurerm_service_plan" "this" {
  name                = local.names.plan
  resource_group_name = local.resource_group_name
  location            = var.location
  os_type             = "Linux"
  sku_name            = "FC1"
  tags                = local.tags

  #checkov:skip=CKV_AZURE_212:Flex Consumption (FC1) has no fixed worker count to set; it scales per function from zero.
  #checkov:skip=CKV_AZURE_225:Zone redundancy is not needed for a daily rotation job (a missed run is caught up by the next one, 30 days before expiry by default).
}

# The service's identity. User-assigned rather than system-assigned because Entra ID
# accepts a user-assigned managed identity as the subject of the federated identity
# credential an app registration trusts (contract section 8, "Configure an application
# to trust a managed identity"), and because it outlives a replaced Function App.
# Everything the app does runs as this identity: Key Vault, host storage, telemetry,
# Databricks (its own PATs), and the client assertions of client_id targets.
resource "azurerm_user_assigned_identity" "function" {
  name                = local.names.identity
  resource_group_name = local.resource_group_name
  location            = var.location
  tags                = local.tags
}

locals {
  # Entra ID per cloud: the SDK authority host (AZURE_AUTHORITY_HOST), the authority of
  # the managed-identity token's issuer claim that a federated credential must name
  # (Microsoft Learn, "Configure an application to trust a managed identity": issuer
  # https://login.microsoftonline.com/{tenant}/v2.0; the Azure China edition of that page
  # gives https://login.partner.microsoftonline.cn/{tenant}/v2.0), and the audience of
  # the token exchange (contract section 8).
  clouds = {
    public = {
      authority               = "https://login.microsoftonline.com"
      issuer_authority        = "https://login.microsoftonline.com"
      token_exchange_audience = "api://AzureADTokenExchange"
      management_resource     = "https://management.core.windows.net/"
      key_vault_suffix        = "vault.azure.net"
    }
    usgovernment = {
      authority               = "https://login.microsoftonline.us"
      issuer_authority        = "https://login.microsoftonline.us"
      token_exchange_audience = "api://AzureADTokenExchangeUSGov"
      management_resource     = "https://management.core.usgovcloudapi.net/"
      key_vault_suffix        = "vault.usgovcloudapi.net"
    }
    china = {
      authority               = "https://login.chinacloudapi.cn"
      issuer_authority        = "https://login.partner.microsoftonline.cn"
      token_exchange_audience = "api://AzureADTokenExchangeChina"
      management_resource     = "https://management.core.chinacloudapi.cn/"
      key_vault_suffix        = "vault.azure.cn"
    }
  }
  cloud = local.clouds[var.azure_cloud]

  # Application settings. Everything pat-rotator reads (contract §2) is either here or
  # deliberately left unset (see infra/tests/test_structure.py for the list and the
  # reasons). No setting holds a secret: storage and Application Insights use the
  # managed identity; the PATs live only in Key Vault.
  #
  # FUNCTIONS_WORKER_RUNTIME is NOT an app setting on Flex Consumption: the runtime is
  # declared by runtime_name = "custom" below (functionAppConfig.runtime), and Flex
  # rejects/ignores the legacy setting (Flex Consumption plan deprecations).
  base_app_settings = {
    ROTATION_SCHEDULE   = var.rotation_schedule
    PAT_CREDENTIAL      = "managed_identity"
    PAT_MAX_CONCURRENCY = tostring(var.max_concurrency)

    # One JSON object per log line: infra/queries/failed-invocation-logs.kql finds a failed
    # invocation's lines by the invocation_id key (the host records handler output without
    # the invocation's operation_Id, see that file), and target/action/code come out as
    # columns instead of being cut out of free text.
    PAT_LOG_FORMAT = var.log_format

    # The user-assigned identity pat-rotator runs as (contract section 2), and the
    # tenant and authority of the federated exchange for client_id targets (contract
    # section 8; the public-cloud authority is also every SDK's default).
    AZURE_CLIENT_ID      = azurerm_user_assigned_identity.function.client_id
    AZURE_TENANT_ID      = data.azurerm_client_config.current.tenant_id
    AZURE_AUTHORITY_HOST = local.cloud.authority

    # The identity's object id: `status` run by a person judges rotated_by_another_identity
    # against the service, not against that person (contract sections 2 and 10).
    PAT_SERVICE_OBJECT_ID = azurerm_user_assigned_identity.function.principal_id

    # Identity-based host storage (no connection string, no key) with the
    # user-assigned identity.
    AzureWebJobsStorage__accountName = azurerm_storage_account.host.name
    AzureWebJobsStorage__credential  = "managedidentity"
    AzureWebJobsStorage__clientId    = azurerm_user_assigned_identity.function.client_id

    # Application Insights ingestion with the user-assigned identity (local auth is off).
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING = "Authorization=AAD;ClientId=${azurerm_user_assigned_identity.function.client_id}"
  }

  # Where the targets come from (contract section 2; at most one of PAT_TARGETS,
  # PAT_TARGETS_FILE, PAT_TARGETS_BLOB is set). "blob": the blob's https URL (no SAS: it is
  # read with the identity), and PAT_ALLOWED_VAULTS, the targets' vault hosts, so that
  # whoever can write the blob still cannot point a target at any other vault.
  targets_settings = var.targets_source == "blob" ? {
    PAT_TARGETS_BLOB   = azurerm_storage_blob.targets[0].url
    PAT_ALLOWED_VAULTS = join(",", module.targets.vault_hosts)
    } : {
    PAT_TARGETS = module.targets.pat_targets_json
  }

  # RUST_LOG only when the operator asks: unset, the program logs at info and keeps the
  # Azure SDK, HTTP and server crates at warn (contract section 2). A plain "info" here
  # would mean the same; leaving it out keeps one place (the program) for the default.
  app_settings = merge(local.base_app_settings, local.targets_settings, var.rust_log == null ? {} : { RUST_LOG = var.rust_log })
}

resource "azurerm_function_app_flex_consumption" "this" {
  name                = local.names.function_app
  resource_group_name = local.resource_group_name
  location            = var.location
  service_plan_id     = azurerm_service_plan.this.id

  runtime_name    = "custom"
  runtime_version = "1.0"

  # Deployment package container, reached with the user-assigned identity.
  storage_container_type            = "blobContainer"
  storage_container_endpoint        = "${azurerm_storage_account.host.primary_blob_endpoint}${azurerm_storage_container.deployment.name}"
  storage_authentication_type       = "UserAssignedIdentity"
  storage_user_assigned_identity_id = azurerm_user_assigned_identity.function.id

  instance_memory_in_mb  = var.instance_memory_in_mb
  maximum_instance_count = var.maximum_instance_count

  https_only                                     = true
  public_network_access_enabled                  = true
  webdeploy_publish_basic_authentication_enabled = false
  client_certificate_enabled                     = false

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.function.id]
  }

  site_config {
    minimum_tls_version                    = "1.2"
    scm_minimum_tls_version                = "1.2"
    http2_enabled                          = true
    remote_debugging_enabled               = false
    application_insights_connection_string = azurerm_application_insights.this.connection_string
  }

  app_settings = local.app_settings

  tags = local.tags

  lifecycle {
    precondition {
      condition     = !var.provision_on_apply || var.deploy_package
      error_message = "provision_on_apply = true needs deploy_package = true: ProvisionPat can only be called once the code is deployed. Set provision_on_apply = false when your pipeline deploys the package, and provision with the CLI (see README)."
    }
  }

  # Deliberate choices (checkov 3.3 has no checks for this resource type yet):
  # - public network access stays on: ProvisionPat is called by Terraform on apply and
  #   by Data Factory; every call needs a function key, and the RotatePat timer has no
  #   endpoint at all. Narrow it with access restrictions or private endpoints.
  # - no App Service authentication / client certificates: callers authenticate with
  #   the function key (authLevel "function") over TLS 1.2+.
}
