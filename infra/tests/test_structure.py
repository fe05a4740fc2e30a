"""Structural checks of infra/ (no provider, no Azure): security settings, the role
assignments, that every setting the program reads is provided or deliberately left
out, and the provisioning step of issue 6."""

from __future__ import annotations

import json
import re

import pytest

from conftest import INFRA, REPO, Module, comments, contract_section, contract_text, expr, first, parse, tf_files, unq

APP = ("azurerm_function_app_flex_consumption", "this")
FUNCTION_PRINCIPAL = "local.function_principal_id"


@pytest.fixture(scope="module")
def app(rotator):
    return rotator.resource(*APP)


TARGETS_SETTINGS = (
    'var.targets_source == "blob" ? '
    '{PAT_TARGETS_BLOB = azurerm_storage_blob.targets[0].url, PAT_ALLOWED_VAULTS = join(",", module.targets.vault_hosts)} : '
    "{PAT_TARGETS = module.targets.pat_targets_json}"
)
# The two shapes of local.targets_settings (contract section 2: at most one source).
TARGETS_FROM_SETTING = {"PAT_TARGETS": "${module.targets.pat_targets_json}"}
TARGETS_FROM_BLOB = {"PAT_TARGETS_BLOB": "${azurerm_storage_blob.targets[0].url}", "PAT_ALLOWED_VAULTS": '${join(",", module.targets.vault_hosts)}'}


@pytest.fixture(scope="module")
def base_settings(rotator, app):
    """The settings every deployment has (local.base_app_settings, a literal map); where the
    targets come from is merged in (local.targets_settings), and RUST_LOG only when the
    operator sets var.rust_log (see test_rust_log_only_on_request)."""
    assert expr(app["app_settings"]) == "local.app_settings", "app_settings must be local.app_settings"
    merged = expr(rotator.locals()["app_settings"])
    assert merged == "merge(local.base_app_settings, local.targets_settings, var.rust_log == null ? {} : {RUST_LOG = var.rust_log})", merged
    assert expr(rotator.locals()["targets_settings"]) == TARGETS_SETTINGS
    settings = rotator.locals()["base_app_settings"]
    assert isinstance(settings, dict)
    return {k: v for k, v in settings.items() if not k.startswith("__")}


@pytest.fixture(scope="module")
def app_settings(base_settings):
    """The settings of the default deployment (targets_source = "setting")."""
    return {**base_settings, **TARGETS_FROM_SETTING}


@pytest.fixture(scope="module")
def blob_app_settings(base_settings):
    """The settings with targets_source = "blob"."""
    return {**base_settings, **TARGETS_FROM_BLOB}


def test_rust_log_only_on_request(rotator, app_settings):
    # Contract section 2: a plain level keeps the SDK/HTTP/server crates at warn; unset,
    # the program's own default applies. infra sets RUST_LOG only when asked.
    assert "RUST_LOG" not in app_settings
    var = rotator.variables()["rust_log"]
    assert var["default"] is None


def test_log_format_defaults_to_json(rotator, app_settings):
    assert expr(app_settings["PAT_LOG_FORMAT"]) == "var.log_format"
    var = rotator.variables()["log_format"]
    assert unq(var["default"]) == "json"
    assert '["json", "text"]' in str(var["validation"][0]["condition"])


def role_assignments(module: Module) -> dict[str, dict]:
    return module.resources("azurerm_role_assignment")


# ---------------------------------------------------------------------------
# Identity, Key Vault and its role
# ---------------------------------------------------------------------------


def test_function_app_runs_as_a_user_assigned_identity(rotator, app, app_settings):
    # Issue 11: Entra accepts a user-assigned managed identity as the subject of an app
    # registration's federated credential; everything moves to it.
    identity = first(app["identity"])
    assert unq(identity["type"]) == "UserAssigned"
    assert [expr(i) for i in identity["identity_ids"]] == ["azurerm_user_assigned_identity.function.id"]
    rotator.resource("azurerm_user_assigned_identity", "function")
    assert expr(rotator.locals()["function_principal_id"]) == "azurerm_user_assigned_identity.function.principal_id"
    outputs = rotator.outputs()
    assert expr(outputs["identity_principal_id"]["value"]) == "azurerm_user_assigned_identity.function.principal_id"
    assert expr(app_settings["AZURE_CLIENT_ID"]) == "azurerm_user_assigned_identity.function.client_id"
    assert expr(app_settings["AZURE_TENANT_ID"]) == "data.azurerm_client_config.current.tenant_id"
    assert unq(app_settings["PAT_CREDENTIAL"]) == "managed_identity"
    # nothing refers to a system-assigned identity any more
    for path in tf_files():
        if "schema_fixtures" in path.parts:
            continue
        text = path.read_text()
        assert "azurerm_function_app_flex_consumption.this.identity" not in text, f"{path}: system-assigned identity reference"


def test_key_vault_uses_rbac_with_purge_protection(rotator):
    kv = rotator.resource("azurerm_key_vault", "this")
    assert kv.get("rbac_authorization_enabled") is True, "the vault must use Azure RBAC (rbac_authorization_enabled = true)"
    assert "enable_rbac_authorization" not in kv, "enable_rbac_authorization is deprecated in azurerm 4.x"
    assert kv.get("purge_protection_enabled") is True
    assert "access_policy" not in kv, "an RBAC vault has no access policies"
    assert not rotator.resources("azurerm_key_vault_access_policy")
    assert expr(kv["soft_delete_retention_days"]) == "var.key_vault_soft_delete_retention_days"


def test_identity_holds_the_vault_role_on_each_vault_only(rotator):
    kv_roles = {
        name: ra
        for name, ra in role_assignments(rotator).items()
        if "Key Vault" in str(ra.get("role_definition_name", "")) or "key_vault" in expr(ra["scope"]) or "vault" in name
    }
    # the vault created here, and each existing vault a target names
    assert sorted(kv_roles) == ["existing_key_vault", "key_vault_secrets_officer"], f"unexpected Key Vault role assignments {sorted(kv_roles)}"
    for name, ra in kv_roles.items():
        # custom (default): the role defined below; builtin: Key Vault Secrets Officer
        assert expr(ra["role_definition_name"]) == 'var.key_vault_role == "custom" ? null : "Key Vault Secrets Officer"', name
        assert expr(ra["role_definition_id"]) == 'var.key_vault_role == "custom" ? azurerm_role_definition.secrets_writer[0].role_definition_resource_id : null', name
        assert expr(ra["principal_id"]) == FUNCTION_PRINCIPAL, name
        assert unq(ra["principal_type"]) == "ServicePrincipal", name
    assert expr(kv_roles["key_vault_secrets_officer"]["scope"]) == "azurerm_key_vault.this.id", "scope must be the vault itself"
    existing = kv_roles["existing_key_vault"]
    assert expr(existing["for_each"]) == "local.existing_vaults" and expr(existing["scope"]) == "each.value.id", "scope must be each vault itself"
    # only the existing vaults some target names
    assert "if contains(local.used_existing_vault_keys, k)" in expr(rotator.locals()["existing_vaults"])
    assert expr(rotator.locals()["used_existing_vault_keys"]) == 'toset([for t in var.targets : t.key_vault if t.key_vault != "default"])'


def test_custom_vault_role_is_the_default_and_secrets_officer_the_fallback(rotator):
    var = rotator.variables()["key_vault_role"]
    assert unq(var["default"]) == "custom"
    assert '["builtin", "custom"]' in str(var["validation"][0]["condition"])
    assert "fallback" in unq(var["description"])


def test_custom_vault_role_reads_lists_and_writes_only(rotator):
    role = rotator.resource("azurerm_role_definition", "secrets_writer")
    assert expr(role["count"]) == 'var.key_vault_role == "custom" ? 1 : 0'
    assert expr(role["scope"]) == "azurerm_key_vault.this.id"
    # assignable on the vaults of this deployment only
    assert expr(role["assignable_scopes"]) == "concat([azurerm_key_vault.this.id], [for k, v in local.existing_vaults : v.id])"
    perms = first(role["permissions"])
    assert sorted(unq(a) for a in perms["data_actions"]) == [
        "Microsoft.KeyVault/vaults/secrets/getSecret/action",
        "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
        "Microsoft.KeyVault/vaults/secrets/setSecret/action",
    ]
    assert "actions" not in perms and "not_data_actions" not in perms


def test_every_role_assignment_is_scoped_to_one_resource(rotator):
    allowed = {
        "key_vault_secrets_officer": ("Key Vault Secrets Officer", "azurerm_key_vault.this.id"),
        "existing_key_vault": ("Key Vault Secrets Officer", "each.value.id"),
        "storage_blob_data_owner": ("Storage Blob Data Owner", "azurerm_storage_account.host.id"),
        # the host's tables; AZFD0003 on every start without it (issue 10)
        "storage_table_data_contributor": ("Storage Table Data Contributor", "azurerm_storage_account.host.id"),
        "monitoring_metrics_publisher": ("Monitoring Metrics Publisher", "azurerm_application_insights.this.id"),
        "workspace_contributor": ("Contributor", "local.workspaces[each.key].resource_id"),
        # targets_source = "blob": the targets container only
        "targets_blob_reader": ("Storage Blob Data Reader", "azurerm_storage_container.targets[0].id"),
    }
    # Not the Function App's: each Event Grid system topic writes its dead letters into
    # one container (test_events.py).
    others = {"dead_letter_writer": ("Storage Blob Data Contributor", "azurerm_storage_container.dead_letter.id")}
    ras = role_assignments(rotator)
    assert set(ras) == set(allowed) | set(others), f"unexpected role assignments: {sorted(set(ras) ^ (set(allowed) | set(others)))}"
    for name, (role, scope) in {**allowed, **others}.items():
        assert role in unq(ras[name]["role_definition_name"]), name
        assert expr(ras[name]["scope"]) == scope, name
    for name in allowed:
        assert expr(ras[name]["principal_id"]) == FUNCTION_PRINCIPAL, name
    # Contributor only where the workspace is in management-header mode.
    assert expr(ras["workspace_contributor"]["for_each"]) == "local.contributor_workspace_keys"
    assert expr(rotator.locals()["contributor_workspace_keys"]) == "module.access.contributor_workspace_keys"


def test_token_acl_is_managed_only_where_the_access_module_says(rotator, root):
    # Issue 10: an authoritative tokens ACL removes everyone else's CAN_USE, which
    # revokes their tokens. Managed by default only in a workspace created here (decided
    # in modules/access, whose `terraform test` suite covers the cases), else opt-in.
    variables = rotator.variables()
    assert variables["manage_databricks_token_permissions"]["default"] is False
    perms = rotator.resource("databricks_permissions", "token_usage_authoritative")
    assert expr(perms["count"]) == "local.manage_token_acl ? 1 : 0"
    assert expr(rotator.locals()["manage_token_acl"]) == "module.access.manage_token_acl"
    access = rotator.modules()["access"]
    assert unq(access["source"]) == "../access"
    assert expr(access["manage_databricks_token_permissions"]) == "var.manage_databricks_token_permissions"
    # destroying it would reset the ACL to the admins: never without a deliberate state rm
    assert first(perms["lifecycle"])["prevent_destroy"] is True
    # the ACL on a created workspace waits for the bootstrap token
    assert [expr(d) for d in perms["depends_on"]] == ["terraform_data.tokens_acl_bootstrap"]
    boot = rotator.resource("terraform_data", "tokens_acl_bootstrap")
    assert expr(boot["count"]) == "module.access.bootstrap_token_acl ? 1 : 0"
    # the address that earlier versions managed by default is forgotten, not destroyed,
    # both at the module's address (callers of the module) and at the root's (state from
    # before the split)
    for module in (rotator, root):
        removed = module.blocks("removed")
        assert any(expr(b["from"]) == "databricks_permissions.token_usage" and first(b["lifecycle"])["destroy"] is False for b in removed), removed
    assert unq(perms["authorization"]) == "tokens"
    acl = perms["access_control"]
    assert unq(acl[0]["permission_level"]) == "CAN_USE"
    assert expr(acl[0]["group_name"]) == "databricks_group.pat_rotator[0].display_name"
    member = rotator.resource("databricks_group_member", "function")
    assert expr(member["member_id"]) == "databricks_service_principal.function[0].id"
    sp = rotator.resource("databricks_service_principal", "function")
    assert expr(sp["application_id"]) == "azurerm_user_assigned_identity.function.client_id"
    # no other resource manages token permissions
    assert set(rotator.resources("databricks_permissions")) == {"token_usage_authoritative"}
    assert not rotator.resources("databricks_permission")


def test_existing_workspace_gets_the_groups_can_use_added_not_replaced(rotator):
    grant = rotator.resource("terraform_data", "grant_token_use")
    assert expr(grant["count"]) == "module.access.grant_token_use ? 1 : 0"
    local_exec = first(grant["provisioner"])['"local-exec"']
    assert "scripts/grant-token-use.sh" in unq(local_exec["command"])
    env = local_exec["environment"]
    assert expr(env["GRANT_WORKSPACE_URL"]) == "local.sp_workspace_url"
    assert expr(env["GRANT_GROUP_NAME"]) == "databricks_group.pat_rotator[0].display_name"
    assert sorted(expr(d) for d in grant["depends_on"]) == ["databricks_group_member.function", "databricks_group_member.target"]
    # re-run when the workspace or the group changes
    assert [expr(t) for t in grant["triggers_replace"]] == ["local.sp_workspace_resource_id", "databricks_group.pat_rotator[0].id"]
    # the script PATCHes (adds) and never PUTs (replaces) the tokens ACL
    script = (INFRA / "scripts" / "grant-token-use.sh").read_text()
    assert "--request PATCH" in script and "--request PUT" not in script
    text = str(rotator.variables()["existing_databricks_workspaces"]["type"])
    assert 'access_mode = optional(string, "workspace_service_principal")' in text, text


def test_new_workspace_defaults_to_least_privilege(rotator):
    text = str(rotator.variables()["new_databricks_workspace"]["type"])
    assert 'access_mode = optional(string, "workspace_service_principal")' in text, text


def test_identity_is_admin_only_for_oauth_secret_targets(rotator):
    admin = rotator.resource("databricks_group_member", "function_admin")
    assert expr(admin["count"]) == "local.identity_is_admin ? 1 : 0"
    assert expr(rotator.locals()["identity_is_admin"]) == "module.access.identity_is_admin"
    assert expr(admin["group_id"]) == "data.databricks_group.admins[0].id"
    assert expr(admin["member_id"]) == "databricks_service_principal.function[0].id"
    admins = rotator.data_sources("databricks_group")["admins"]
    assert unq(admins["display_name"]) == "admins"
    # nothing else joins the admins group
    members = rotator.resources("databricks_group_member")
    assert [n for n, m in members.items() if "admins" in expr(m["group_id"])] == ["function_admin"]


# ---------------------------------------------------------------------------
# Transport security, FTP, public access
# ---------------------------------------------------------------------------


def test_function_app_https_only_tls12_no_basic_auth_publishing(app):
    assert app.get("https_only") is True
    site = first(app["site_config"])
    assert unq(site["minimum_tls_version"]) in {"1.2", "1.3"}
    assert unq(site["scm_minimum_tls_version"]) in {"1.2", "1.3"}
    assert site.get("remote_debugging_enabled") is False
    assert app.get("webdeploy_publish_basic_authentication_enabled") is False


def test_ftp_is_turned_off(app):
    # azurerm's Flex Consumption resource has no ftps_state / FTP basic-auth argument;
    # the deployment script switches the FTP publishing policy off.
    assert "ftps_state" not in first(app["site_config"])
    script = (INFRA / "scripts" / "deploy-package.sh").read_text()
    assert "basicPublishingCredentialsPolicies/ftp" in script
    assert "--set properties.allow=false" in script


def test_storage_has_no_public_blob_access_and_no_keys(rotator):
    sa = rotator.resource("azurerm_storage_account", "host")
    assert sa.get("allow_nested_items_to_be_public") is False
    assert sa.get("shared_access_key_enabled") is False
    assert sa.get("https_traffic_only_enabled") is True
    assert unq(sa["min_tls_version"]) == "TLS1_2"
    assert sa.get("local_user_enabled") is False
    container = rotator.resource("azurerm_storage_container", "deployment")
    assert unq(container["container_access_type"]) == "private"


def test_host_storage_uses_the_identity(app, app_settings, rotator):
    assert unq(app["storage_authentication_type"]) == "UserAssignedIdentity"
    assert expr(app["storage_user_assigned_identity_id"]) == "azurerm_user_assigned_identity.function.id"
    assert "storage_access_key" not in app
    assert expr(app_settings["AzureWebJobsStorage__accountName"]) == "azurerm_storage_account.host.name"
    assert unq(app_settings["AzureWebJobsStorage__credential"]) == "managedidentity"
    assert expr(app_settings["AzureWebJobsStorage__clientId"]) == "azurerm_user_assigned_identity.function.client_id"
    assert "AzureWebJobsStorage" not in app_settings, "a connection string would take precedence over the identity"
    script = (INFRA / "scripts" / "deploy-package.sh").read_text()
    assert "AzureWebJobsStorage" in script and "DEPLOYMENT_STORAGE_CONNECTION_STRING" in script


def test_application_insights_uses_entra_auth(rotator, app_settings):
    appi = rotator.resource("azurerm_application_insights", "this")
    assert appi.get("local_authentication_enabled") is False
    assert unq(app_settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]) == "Authorization=AAD;ClientId=${azurerm_user_assigned_identity.function.client_id}"


def test_flex_consumption_plan_and_custom_runtime(rotator, app, app_settings):
    plan = rotator.resource("azurerm_service_plan", "this")
    assert unq(plan["sku_name"]) == "FC1"
    assert unq(plan["os_type"]) == "Linux"
    assert unq(app["runtime_name"]) == "custom"
    # On Flex Consumption the worker runtime is functionAppConfig.runtime
    # (runtime_name above); the legacy FUNCTIONS_WORKER_RUNTIME setting is deprecated there.
    assert "FUNCTIONS_WORKER_RUNTIME" not in app_settings


# ---------------------------------------------------------------------------
# Settings the program reads (contract §1-§3) vs. what the app sets
# ---------------------------------------------------------------------------

SET_BY_INFRA = {
    "PAT_TARGETS", "ROTATION_SCHEDULE", "PAT_CREDENTIAL", "PAT_MAX_CONCURRENCY", "PAT_LOG_FORMAT",
    "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_AUTHORITY_HOST", "PAT_SERVICE_OBJECT_ID",
}

# Set instead of PAT_TARGETS when the operator chooses targets_source = "blob".
SET_WITH_BLOB = {"PAT_TARGETS_BLOB", "PAT_ALLOWED_VAULTS"}

# Set only when the operator asks (a variable that defaults to null).
SET_ON_REQUEST = {
    "RUST_LOG": "var.rust_log; unset, the program's default (info, SDK/HTTP/server crates at warn) applies",
}

DELIBERATELY_UNSET = {
    # Flat single-target form: superseded by PAT_TARGETS, which is always set.
    "DATABRICKS_HOST": "flat form, superseded by PAT_TARGETS",
    "DATABRICKS_WORKSPACE_RESOURCE_ID": "flat form, superseded by PAT_TARGETS",
    "KEY_VAULT_URL": "flat form, superseded by PAT_TARGETS",
    "KEY_VAULT_NAME": "flat form, superseded by PAT_TARGETS",
    "PAT_SECRET_NAME": "flat form, superseded by PAT_TARGETS",
    "PAT_LIFETIME_DAYS": "flat form, superseded by PAT_TARGETS",
    "PAT_RENEW_BEFORE_DAYS": "flat form, superseded by PAT_TARGETS",
    "PAT_REVOKE_GRACE_HOURS": "flat form, superseded by PAT_TARGETS",
    "PAT_SCOPES": "flat form, superseded by PAT_TARGETS",
    "PAT_AUTOSCOPE": "flat form, superseded by PAT_TARGETS (autoscope per target)",
    "PAT_CLIENT_ID": "flat form, superseded by PAT_TARGETS (client_id per target)",
    "PAT_KIND": "flat form, superseded by PAT_TARGETS (kind per target)",
    "PAT_SERVICE_PRINCIPAL": "flat form, superseded by PAT_TARGETS (service_principal per target)",
    "PAT_KEEP_WHILE_USED": "flat form, superseded by PAT_TARGETS (keep_while_used per target)",
    "PAT_TARGETS_FILE": "a file path: the app reads PAT_TARGETS or, with targets_source = blob, PAT_TARGETS_BLOB",
    "PAT_FORCE_COOLDOWN_MINUTES": "the contract's default (15) is the operator's choice too",
    "PAT_KEYVAULT_FLEET_FACTOR": "the contract's default (3) leaves two fifths of the subscription's Key Vault budget to others",
    # Credentials: the user-assigned identity needs only AZURE_CLIENT_ID (set).
    "AZURE_CLIENT_SECRET": "a secret; never in app settings (managed identity is used)",
    "AZURE_FEDERATED_TOKEN_FILE": "workload identity (Kubernetes) only",
    "SSL_CERT_FILE": "local emulators only",
}

SET_BY_PLATFORM = {
    "IDENTITY_ENDPOINT": "injected by App Service for the managed identity",
    "IDENTITY_HEADER": "injected by App Service for the managed identity",
    "FUNCTIONS_CUSTOMHANDLER_PORT": "passed by the Functions host to the handler",
    "FUNCTIONS_WORKER_RUNTIME": "Flex Consumption: functionAppConfig.runtime (runtime_name = custom)",
}

# Settings the app sets that the contract does not name: Functions platform settings.
PLATFORM_SETTINGS = {
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}

# Used when this checkout has no shared/ next to it: the contract's names as of writing.
CONTRACT_SETTINGS_SNAPSHOT = set(SET_BY_INFRA) | set(DELIBERATELY_UNSET) | {
    "IDENTITY_ENDPOINT",
    "FUNCTIONS_CUSTOMHANDLER_PORT",
    "FUNCTIONS_WORKER_RUNTIME",
}


def contract_setting_names() -> set[str]:
    text = contract_text()
    if text is None:
        return CONTRACT_SETTINGS_SNAPSHOT
    names = set()
    for number in (1, 2, 3):
        section = contract_section(text, number)
        names |= set(re.findall(r"`([A-Z][A-Z0-9_]{2,})`", section))
    return names


def test_every_setting_the_code_reads_is_set_or_deliberately_optional(app_settings):
    names = contract_setting_names()
    assert {"PAT_TARGETS", "ROTATION_SCHEDULE", "PAT_CREDENTIAL"} <= names, "contract parsing went wrong"
    unaccounted = sorted(
        n for n in names
        if n not in SET_BY_INFRA and n not in DELIBERATELY_UNSET and n not in SET_BY_PLATFORM and n not in SET_ON_REQUEST and n not in SET_WITH_BLOB
    )
    assert not unaccounted, (
        f"the contract names settings that infra neither sets nor lists as deliberately unset: {unaccounted}"
    )
    for name in SET_BY_INFRA:
        assert name in app_settings, f"{name} must be an app setting"
    for name in DELIBERATELY_UNSET:
        assert name not in app_settings, f"{name} is listed as deliberately unset but is set"
    unknown = sorted(set(app_settings) - SET_BY_INFRA - PLATFORM_SETTINGS)
    assert not unknown, f"app settings that are neither contract nor platform settings (typo?): {unknown}"


def test_service_object_id_is_the_identitys_principal(app_settings):
    # contract sections 2 and 10: status run by a person judges rotated_by_another_identity
    # against the service's object id
    assert expr(app_settings["PAT_SERVICE_OBJECT_ID"]) == "azurerm_user_assigned_identity.function.principal_id"


def test_targets_come_from_one_source(rotator, app_settings, blob_app_settings):
    var = rotator.variables()["targets_source"]
    assert unq(var["default"]) == "setting"
    assert '["setting", "blob"]' in str(var["validation"][0]["condition"])
    # contract section 2: at most one of PAT_TARGETS, PAT_TARGETS_FILE, PAT_TARGETS_BLOB
    sources = {"PAT_TARGETS", "PAT_TARGETS_FILE", "PAT_TARGETS_BLOB"}
    assert sources & set(app_settings) == {"PAT_TARGETS"}
    assert sources & set(blob_app_settings) == {"PAT_TARGETS_BLOB"}
    unknown = sorted(set(blob_app_settings) - SET_BY_INFRA - SET_WITH_BLOB - PLATFORM_SETTINGS)
    assert not unknown, unknown
    for name, value in blob_app_settings.items():
        assert not SECRET_REFERENCE.search(str(value)) and not SECRET_LITERAL.search(str(value)), name


def test_targets_blob_is_read_by_the_identity_alone(rotator):
    gated = 'var.targets_source == "blob" ? 1 : 0'
    account = rotator.resource("azurerm_storage_account", "targets")
    container = rotator.resource("azurerm_storage_container", "targets")
    blob = rotator.resource("azurerm_storage_blob", "targets")
    reader = rotator.resource("azurerm_role_assignment", "targets_blob_reader")
    audit = rotator.resource("azurerm_monitor_diagnostic_setting", "targets_blob")
    for body in (account, container, blob, reader, audit):
        assert expr(body["count"]) == gated, "only when told to (targets_source = blob)"
    # the same JSON as PAT_TARGETS, in a dedicated container of a dedicated account (the
    # identity is Blob Data Owner of the whole host account, which would let it rewrite
    # its own targets)
    assert expr(blob["source_content"]) == "module.targets.pat_targets_json"
    assert expr(blob["storage_container_id"]) == "azurerm_storage_container.targets[0].id"
    assert unq(blob["content_type"]) == "application/json" and unq(blob["type"]) == "Block"
    assert expr(container["storage_account_id"]) == "azurerm_storage_account.targets[0].id"
    assert unq(container["container_access_type"]) == "private"
    assert account["shared_access_key_enabled"] is False and account["allow_nested_items_to_be_public"] is False
    assert account["local_user_enabled"] is False and account["default_to_oauth_authentication"] is True
    assert first(account["blob_properties"])["versioning_enabled"] is True, "every earlier target list is kept"
    assert unq(audit["target_resource_id"]) == "${azurerm_storage_account.targets[0].id}/blobServices/default"
    # Storage Blob Data Reader for the service identity on that container, and no other
    # role on the container or its account from this configuration
    assert unq(reader["role_definition_name"]) == "Storage Blob Data Reader"
    assert expr(reader["scope"]) == "azurerm_storage_container.targets[0].id"
    assert expr(reader["principal_id"]) == FUNCTION_PRINCIPAL
    on_targets = [n for n, ra in role_assignments(rotator).items() if "targets" in expr(ra["scope"])]
    assert on_targets == ["targets_blob_reader"], on_targets
    # no SAS anywhere: the blob URL is read with the identity
    assert not rotator.data_sources("azurerm_storage_account_sas") and not rotator.data_sources("azurerm_storage_account_blob_container_sas")


def test_allowed_vaults_are_the_targets_vault_hosts(targets_module):
    out = Module(INFRA / "modules" / "targets").outputs()["vault_hosts"]
    assert expr(out["value"]) == 'sort(distinct([for t in local.pat_targets : lower(split("/", t.key_vault_url)[2])]))'


def test_settings_values(app_settings, rotator):
    assert expr(app_settings["PAT_TARGETS"]) == "module.targets.pat_targets_json"
    assert expr(app_settings["ROTATION_SCHEDULE"]) == "var.rotation_schedule"
    assert unq(app_settings["PAT_CREDENTIAL"]) == "managed_identity"
    variables = rotator.variables()
    assert unq(variables["rotation_schedule"]["default"]) == "0 0 3 * * *"
    local_settings = json.loads((REPO / "local.settings.json").read_text())
    assert local_settings["Values"]["ROTATION_SCHEDULE"] == "0 0 3 * * *"
    timer = json.loads((REPO / "RotatePat" / "function.json").read_text())
    assert timer["bindings"][0]["schedule"] == "%ROTATION_SCHEDULE%"


SECRET_NAME = re.compile(r"(?i)(secret|password|passwd|connection_?string|(^|_)key$|_key_|accountkey|sas|token$)")
SECRET_REFERENCE = re.compile(
    r"(primary_access_key|secondary_access_key|primary_connection_string|secondary_connection_string|"
    r"connection_string|instrumentation_key|default_function_key|primary_key|client_secret|"
    r"azurerm_key_vault_secret|\.value\b)"
)
SECRET_LITERAL = re.compile(r"(?i)(accountkey=|sharedaccesssignature|sig=|dapi[0-9a-f]{8}|instrumentationkey=)")


def test_no_secret_in_app_settings(app_settings):
    for name, value in app_settings.items():
        text = str(value)
        assert not SECRET_NAME.search(name), f"app setting {name} looks like a secret"
        assert not SECRET_REFERENCE.search(text), f"app setting {name} = {text} references a secret attribute"
        assert not SECRET_LITERAL.search(text), f"app setting {name} holds a credential literal"
    # No Key Vault references either: the PATs are read by the code, not injected.
    assert not any("@Microsoft.KeyVault" in str(v) for v in app_settings.values())


def test_no_connection_strings_on_the_app(app):
    assert "connection_string" not in app


# ---------------------------------------------------------------------------
# PAT_TARGETS generation and its validation
# ---------------------------------------------------------------------------

CONTRACT_TARGET_FIELDS_SNAPSHOT = {
    "name", "workspace_url", "workspace_resource_id", "key_vault_url", "secret_name",
    "lifetime_days", "renew_before_days", "revoke_grace_hours", "scopes",
}


def contract_target_fields() -> set[str]:
    text = contract_text()
    if text is None:
        return CONTRACT_TARGET_FIELDS_SNAPSHOT
    section = contract_section(text, 2)
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, re.M))


def test_pat_targets_have_exactly_the_contract_target_fields(targets_module):
    pat_targets = expr(targets_module.locals()["pat_targets"])
    produced = set(re.findall(r"\b([a-z_]+)\s*=(?!=)", pat_targets)) - {"k", "v"}
    produced -= {"for", "if"}
    fields = contract_target_fields()
    assert len(fields) >= 9, f"contract parsing went wrong: {fields}"
    assert produced == fields, f"PAT_TARGETS fields {sorted(produced)} != contract §2 target fields {sorted(fields)}"


def test_targets_module_is_used_with_the_root_variable(rotator):
    mod = rotator.modules()["targets"]
    assert unq(mod["source"]) == "../targets"
    passed = expr(mod["targets"])
    assert passed.startswith("[for t in var.targets : {"), passed
    # client_id: the existing one, or the created app registration's
    assert "azuread_application_registration.target[t.name].client_id" in passed
    assert "federated = t.client_id != null || t.create_app_registration" in passed
    assert expr(mod["key_vault_url"]) == "azurerm_key_vault.this.vault_uri"
    assert expr(mod["workspaces"]) == "local.workspaces"


def target_fields(type_expr) -> set[str]:
    return set(re.findall(r"\b([a-z_]+)\s*=", str(type_expr)))


def test_root_and_module_target_types_agree(rotator, targets_module):
    root_fields = target_fields(rotator.variables()["targets"]["type"])
    module_fields = target_fields(targets_module.variables()["targets"]["type"])
    # The rotator takes create_app_registration; the module takes the derived federated flag.
    assert root_fields - {"create_app_registration"} == module_fields - {"federated"}, (root_fields, module_fields)
    passed = target_fields(rotator.modules()["targets"]["targets"])
    assert module_fields <= passed, f"the rotator passes {sorted(passed)}, the module takes {sorted(module_fields)}"


def test_targets_validation_mirrors_contract_rules(targets_module):
    validations = targets_module.variables()["targets"]["validation"]
    conditions = " ".join(str(v["condition"]) for v in validations)
    for rule in (
        "^[a-z0-9][a-z0-9-]{0,62}$",  # name
        "length(distinct([for t in var.targets : t.name]))",  # unique names
        "^[0-9a-zA-Z-]{1,127}$",  # secret_name
        "t.lifetime_days <= 730",
        "t.lifetime_days >= 1",
        "t.renew_before_days > 0",
        "t.renew_before_days < coalesce(t.lifetime_days, 90)",
        "t.revoke_grace_hours >= 0",
        "t.revoke_grace_hours <= 720",
        "floor(t.lifetime_days) == t.lifetime_days",
        "contains(keys(var.workspaces), t.workspace)",
    ):
        assert rule in conditions, f"targets validation lacks the rule {rule!r}"
    ws_conditions = " ".join(str(v["condition"]) for v in targets_module.variables()["workspaces"]["validation"])
    assert "azure_contributor" in ws_conditions and "workspace_service_principal" in ws_conditions
    assert "Microsoft\\\\.Databricks/workspaces" in ws_conditions or "Microsoft\\.Databricks/workspaces" in ws_conditions


def test_defaults_match_the_contract(rotator):
    text = str(rotator.variables()["targets"]["type"])
    assert "lifetime_days = optional(number, 90)" in text
    assert "renew_before_days = optional(number, 30)" in text
    assert "revoke_grace_hours = optional(number, 24)" in text


# ---------------------------------------------------------------------------
# Issue 6: deployment and first provisioning
# ---------------------------------------------------------------------------


def test_package_is_deployed_after_the_app_and_redeployed_on_app_changes(rotator):
    deploy = rotator.resource("terraform_data", "deploy_package")
    assert "filesha256(local.package_path)" in str(deploy["triggers_replace"])
    lifecycle = first(deploy["lifecycle"])
    assert [expr(x) for x in lifecycle["replace_triggered_by"]] == ["azurerm_function_app_flex_consumption.this"]
    assert "fileexists(local.package_path)" in str(first(lifecycle["precondition"])["condition"])
    prov = first(deploy["provisioner"])['"local-exec"']
    assert "scripts/deploy-package.sh" in prov["command"]
    env = prov["environment"]
    assert expr(env["DEPLOY_FUNCTION_APP"]) == "azurerm_function_app_flex_consumption.this.name"


def test_provisioning_step_exists_per_target_and_depends_on_everything_it_needs(rotator):
    prov = rotator.resource("terraform_data", "provision")
    for_each = expr(prov["for_each"])
    assert "var.targets" in for_each and "t.name" in for_each, "one provisioning step per target"
    triggers = prov["triggers_replace"]
    assert expr(triggers["target_settings"]) == "module.targets.settings_hash[each.key]", (
        "a change re-provisions only the changed target"
    )
    assert "pat_targets_json" not in str(triggers), "must not depend on the whole PAT_TARGETS document"
    deps = {expr(d) for d in prov["depends_on"]}
    needed = {
        "terraform_data.deploy_package",  # the package
        "azurerm_role_assignment.key_vault_secrets_officer",  # the vault role
        "azurerm_role_assignment.workspace_contributor",  # management-header mode
        "databricks_permissions.token_usage_authoritative",  # opt-in tokens ACL
        "databricks_group_member.function",
        "azurerm_role_assignment.storage_blob_data_owner",
        "azurerm_role_assignment.existing_key_vault",  # the vault role on existing vaults
        "terraform_data.grant_token_use",  # an existing workspace's CAN_USE entry
        "azurerm_storage_blob.targets",  # targets_source = "blob": the blob, and the right to read it
        "azurerm_role_assignment.targets_blob_reader",
    }
    assert needed <= deps, f"missing depends_on: {sorted(needed - deps)}"
    # a target is re-provisioned when its own vault is replaced
    assert expr(triggers["key_vault_id"]) == "local.vaults[local.target_key_vault[each.key]].id"
    # The app itself: referenced directly.
    assert "azurerm_function_app_flex_consumption.this" in str(triggers)
    # An identity switch re-provisions in the same apply (the new identity cannot use
    # the old identity's tokens).
    assert expr(triggers["identity"]) == "azurerm_user_assigned_identity.function.principal_id"


def test_provisioning_never_puts_the_key_on_a_command_line(rotator):
    prov = rotator.resource("terraform_data", "provision")
    local_exec = first(prov["provisioner"])['"local-exec"']
    command = str(local_exec["command"])
    assert "scripts/provision.sh" in command
    assert "${" not in command.replace("${path.module}", ""), "the command line must not interpolate values"
    env = local_exec["environment"]
    assert "data.azurerm_function_app_host_keys.this[0].default_function_key" in str(env["PROVISION_FUNCTION_KEY"])
    assert expr(env["PROVISION_TARGET"]) == "each.key"
    assert "/api/ProvisionPat" in str(env["PROVISION_URL"])
    assert "code=" not in str(env["PROVISION_URL"]), "the key must not travel in the URL"
    hostkeys = rotator.data_sources("azurerm_function_app_host_keys")["this"]
    assert [expr(d) for d in hostkeys["depends_on"]] == ["terraform_data.deploy_package"]


def test_no_provisioner_command_interpolates_a_secret():
    commands = 0
    for path in tf_files():
        text = path.read_text()
        for match in re.finditer(r'command\s*=\s*("(?:[^"\\]|\\.)*")', text):
            commands += 1
            for ref in re.findall(r"\$\{([^}]*)\}", match.group(1)):
                assert ref == "path.module", f"{path}: provisioner command interpolates {ref!r}; pass values in environment"
    assert commands >= 3


def test_key_outputs_are_sensitive(rotator, adf_example):
    for module in (rotator, adf_example):
        for name, out in module.outputs().items():
            value = str(out["value"])
            if re.search(r"(default_function_key|primary_key|function_key|connection_string|\.value\b)", value):
                assert out.get("sensitive") is True, f"output {name} exposes a secret and must be sensitive"
    assert rotator.outputs()["function_key"]["sensitive"] is True


def test_required_outputs(rotator):
    outputs = rotator.outputs()
    for name in ("function_app_url", "provision_pat_url", "secret_ids", "identity_principal_id", "provisioned_targets"):
        assert name in outputs, name
    assert expr(outputs["secret_ids"]["value"]) == "module.targets.secret_ids"


def test_provision_script_prints_the_key_nowhere():
    script = (INFRA / "scripts" / "provision.sh").read_text()
    uses = [line for line in script.splitlines() if "$key" in line or "${key" in line]
    for line in uses:
        stripped = line.strip()
        assert (
            stripped.startswith("key=")
            or stripped.startswith('[[ -n "$key" ]]')
            or stripped.startswith('[[ "$key" =~')
            or 'text="${text//"$key"/' in stripped
            or stripped.startswith("status=\"$(printf 'header = \"x-functions-key: %s\"\\n' \"$key\"")
        ), f"unexpected use of the key: {stripped}"


# ---------------------------------------------------------------------------
# Versions, examples, checkov skips
# ---------------------------------------------------------------------------


def test_provider_versions_are_pinned_with_reasons():
    text = (INFRA / "versions.tf").read_text()
    data = parse(INFRA / "versions.tf")
    tf = first(data["terraform"])
    providers = first(tf["required_providers"])
    azurerm = providers["azurerm"]
    version = unq(azurerm["version"])
    match = re.fullmatch(r"~> 4\.(\d+)", version)
    # 4.79.0 is the schema the schema check uses (issue 10); local_authentication_enabled
    # on Application Insights needs 4.78.
    assert match and int(match.group(1)) >= 79, f"azurerm must be pinned to 4.x >= 4.79, got {version}"
    dbx = re.fullmatch(r"~> 1\.(\d+)", unq(providers["databricks"]["version"]))
    assert dbx and int(dbx.group(1)) >= 53, "databricks >= 1.53: CAN_MANAGE in the tokens ACL"
    aad = re.fullmatch(r"~> 3\.(\d+)", unq(providers["azuread"]["version"]))
    assert aad and int(aad.group(1)) >= 7, "azuread >= 3.7: the checked schema"
    adf = first(first(parse(INFRA / "examples" / "data-factory" / "main.tf")["terraform"])["required_providers"])
    assert unq(adf["azurerm"]["version"]) == version, "the Data Factory sample pins the same azurerm line"
    assert unq(tf["required_version"]).startswith(">= 1.9")
    assert "rbac_authorization_enabled" in text and "runtime_name" in text, "versions.tf must say why these pins"


def test_minimal_tfvars_sets_only_declared_variables_and_all_required_ones(rotator):
    variables = rotator.variables()
    required = {name for name, body in variables.items() if "default" not in body}
    for tfvars in sorted((INFRA / "examples").glob("*.tfvars")):
        data = {k: v for k, v in parse(tfvars).items() if not k.startswith("__")}
        unknown = set(data) - set(variables)
        assert not unknown, f"{tfvars.name} sets undeclared variables {sorted(unknown)}"
        missing = required - set(data)
        assert not missing, f"{tfvars.name} misses required variables {sorted(missing)}"


def test_data_factory_sample(adf_example, rotator):
    mod = adf_example.modules()["pat_rotator"]
    assert unq(mod["source"]) == "../../modules/pat-rotator"
    unknown = {k for k in mod if not k.startswith("__") and k != "source"} - set(rotator.variables())
    assert not unknown, f"the sample passes undeclared variables {sorted(unknown)}"

    kv_ls = adf_example.resource("azurerm_data_factory_linked_service_key_vault", "vault")
    assert expr(kv_ls["key_vault_id"]) == "local.vault_id"

    fn_ls = adf_example.resource("azurerm_data_factory_linked_service_azure_function", "rotator")
    kv_key = first(fn_ls["key_vault_key"])
    assert expr(kv_key["linked_service_name"]) == "azurerm_data_factory_linked_service_key_vault.sample.name"
    sample_ls = adf_example.resource("azurerm_data_factory_linked_service_key_vault", "sample")
    assert expr(sample_ls["key_vault_id"]) == "azurerm_key_vault.sample.id"
    assert "key" not in fn_ls, "the function key must come from Key Vault"

    dbx_ls = adf_example.resource("azurerm_data_factory_linked_service_azure_databricks", "workspace")
    kv_pw = first(dbx_ls["key_vault_password"])
    assert expr(kv_pw["secret_name"]) == "local.pat_secret_name"
    assert "access_token" not in dbx_ls
    assert "terraform_data.pat_ready" in {expr(d) for d in dbx_ls["depends_on"]}

    ready = adf_example.resource("terraform_data", "pat_ready")
    assert expr(ready["input"]) == "module.pat_rotator.provisioned_targets"

    pipeline = adf_example.resource("azurerm_data_factory_pipeline", "provision_pat")
    activities = str(pipeline["activities_json"])
    for needle in ("AzureFunctionActivity", 'functionName = "ProvisionPat"', 'method = "POST"', "target"):
        assert needle in activities, needle

    reads_pat = adf_example.resource("azurerm_role_assignment", "factory_reads_pat")
    assert unq(reads_pat["role_definition_name"]) == "Key Vault Secrets User"
    assert expr(reads_pat["scope"]) == '"${local.vault_id}/secrets/${local.pat_secret_name}"', "Secrets User on the PAT secret only (its resource id)"
    assert expr(reads_pat["principal_id"]) == "azurerm_data_factory.this.identity[0].principal_id"
    reads_key = adf_example.resource("azurerm_role_assignment", "factory_reads_function_key")
    assert unq(reads_key["role_definition_name"]) == "Key Vault Secrets User"
    assert expr(reads_key["scope"]) == "azurerm_key_vault_secret.function_key.resource_versionless_id"


def test_data_factory_sample_gives_the_deployer_no_role_on_the_pat_vault(adf_example):
    # Issue 10: the deploying identity has no data-plane role on the PAT vault; the
    # function key lives in the sample's own vault.
    for name, ra in adf_example.resources("azurerm_role_assignment").items():
        scope = expr(ra["scope"])
        if "current.object_id" in expr(ra["principal_id"]):
            assert scope == "azurerm_key_vault.sample.id", f"{name}: the deployer may only hold a role on the sample vault"
        if "local.vault_id" in scope:
            assert "/secrets/" in scope and unq(ra["role_definition_name"]) == "Key Vault Secrets User", name
    secret = adf_example.resource("azurerm_key_vault_secret", "function_key")
    assert expr(secret["key_vault_id"]) == "azurerm_key_vault.sample.id"


def test_data_factory_sample_has_its_own_databricks_principal(adf_example):
    # Issue 11: the factory's PAT belongs to an app registration created for its target.
    mod = adf_example.modules()["pat_rotator"]
    (target,) = mod["targets"]
    assert target.get("create_app_registration") is True, target
    assert "client_id" not in target


def checkov_skips():
    found = []
    for path in tf_files():
        for match in re.finditer(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?", path.read_text()):
            found.append((path.relative_to(INFRA), match.group(1), (match.group(2) or "").strip()))
    return found


def test_every_checkov_skip_carries_a_reason():
    skips = checkov_skips()
    assert skips, "expected the documented skips"
    for path, check, reason in skips:
        assert len(reason) >= 30, f"{path}: checkov skip {check} needs a written reason"


def test_hcl2_sees_the_checkov_skips_as_comments(rotator):
    kv = rotator.resource("azurerm_key_vault", "this")
    assert any(c.startswith("checkov:skip=CKV_AZURE_109:") for c in comments(kv))
