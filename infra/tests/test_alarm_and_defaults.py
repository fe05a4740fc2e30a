"""Issue 10 and the Terraform part of issue 11, offline: the alarm (action group and
the two log alerts on RotatePat invocations), the safe defaults, value ranges the
configuration relies on that no provider schema carries (the schema check covers
names, not ranges), and the federated app registrations per target."""

from __future__ import annotations

import re

import pytest

from conftest import INFRA, expr, first, unq

# azurerm's validation of azurerm_monitor_scheduled_query_rules_alert_v2 (provider code,
# v4.79.0 internal/services/monitor/monitor_scheduled_query_rules_alert_v2_resource.go):
# not in the schema, so pinned here.
EVALUATION_FREQUENCIES = {"PT1M", "PT5M", "PT10M", "PT15M", "PT30M", "PT45M", "PT1H", "PT2H", "PT3H", "PT4H", "PT5H", "PT6H", "P1D"}
WINDOW_DURATIONS = EVALUATION_FREQUENCIES | {"P2D"}
MUTE_DURATIONS = (WINDOW_DURATIONS - {"PT1M"})


def iso_hours(value: str) -> float:
    m = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?", value)
    assert m, value
    d, h, mi = (int(x or 0) for x in m.groups())
    return d * 24 + h + mi / 60


@pytest.fixture(scope="module")
def alerts(rotator):
    return rotator.resources("azurerm_monitor_scheduled_query_rules_alert_v2")


def test_action_group_receivers_come_from_variables(rotator):
    ag = rotator.resource("azurerm_monitor_action_group", "alarm")
    assert "local.alert_receivers" in expr(ag["count"])
    dyn = {unq(k): v for entry in ag["dynamic"] for k, v in entry.items()}
    assert "var.alert_email_addresses" in expr(dyn["email_receiver"]["for_each"])
    assert "var.alert_webhook_urls" in expr(dyn["webhook_receiver"]["for_each"])
    email = first(dyn["email_receiver"]["content"])
    assert expr(email["email_address"]) == "email_receiver.value"
    hook = first(dyn["webhook_receiver"]["content"])
    assert expr(hook["service_uri"]) == "webhook_receiver.value"
    assert len(unq(ag["short_name"])) <= 12, "Azure limits short_name to 12 characters"
    variables = rotator.variables()
    assert variables["alert_email_addresses"]["default"] == []
    assert variables["alert_webhook_urls"]["default"] == []


def test_failed_invocation_alert_keys_on_the_request_result(alerts):
    alert = alerts["rotation_failed"]
    crit = first(alert["criteria"])
    query = " ".join(unq(str(crit["query"])).split())
    assert "requests" in query and 'name == "RotatePat"' in query and "success == false" in query, query
    assert "severity" not in query.lower() and "traces" not in query, "key on the failed invocation, not on log severity"
    assert unq(crit["operator"]) == "GreaterThan" and crit["threshold"] == 0
    assert unq(crit["time_aggregation_method"]) == "Count"
    assert [expr(s) for s in alert["scopes"]] == ["azurerm_application_insights.this.id"]
    assert unq(alert["evaluation_frequency"]) in EVALUATION_FREQUENCIES
    assert unq(alert["window_duration"]) in WINDOW_DURATIONS
    assert unq(alert["mute_actions_after_alert_duration"]) in MUTE_DURATIONS
    # windows overlap so no failure falls between evaluations
    assert iso_hours(unq(alert["window_duration"])) >= iso_hours(unq(alert["evaluation_frequency"]))


def test_missing_success_alert_looks_back_schedule_plus_margin(rotator, alerts):
    alert = alerts["rotation_missing"]
    crit = first(alert["criteria"])
    query = " ".join(unq(str(crit["query"])).split())
    assert "ago(${var.alert_no_success_hours}h)" in query, query
    assert 'name == "RotatePat"' in query and "success == true" in query
    assert unq(crit["operator"]) == "LessThan" and crit["threshold"] == 1
    window = unq(alert["window_duration"])
    assert window in WINDOW_DURATIONS and unq(alert["evaluation_frequency"]) in EVALUATION_FREQUENCIES
    var = rotator.variables()["alert_no_success_hours"]
    assert var["default"] == 26, "daily schedule + 2 h margin"
    # the query's look-back must fit the window azurerm accepts (at most P2D)
    upper = int(re.search(r"<= (\d+)", str(var["validation"][0]["condition"])).group(1))
    assert upper <= iso_hours(window) == 48


def test_both_alerts_notify_the_action_group(alerts):
    for name, alert in alerts.items():
        dyn = {unq(k): v for entry in alert["dynamic"] for k, v in entry.items()}
        assert expr(dyn["action"]["for_each"]) == "azurerm_monitor_action_group.alarm", name
        assert [expr(a) for a in first(dyn["action"]["content"])["action_groups"]] == ["action.value.id"], name


def test_maximum_instance_count_defaults_to_40(rotator):
    var = rotator.variables()["maximum_instance_count"]
    assert var["default"] == 40
    assert "most regions" in var["description"]
    cond = str(var["validation"][0]["condition"])
    assert ">= 1" in cond and "<= 1000" in cond, "azurerm >= 4.58 validates 1..1000"


def test_instance_memory_sizes(rotator):
    cond = str(rotator.variables()["instance_memory_in_mb"]["validation"][0]["condition"])
    assert "[512, 2048, 4096]" in cond


# ---------------------------------------------------------------------------
# Issue 11: app registrations, federated credentials, Databricks members
# ---------------------------------------------------------------------------


def test_federated_credential_trusts_the_user_assigned_identity(rotator):
    fic = rotator.resource("azuread_application_federated_identity_credential", "target")
    assert expr(fic["application_id"]) == "azuread_application_registration.target[each.key].id"
    assert expr(fic["subject"]) == "local.federated_credential.subject"
    fc = rotator.locals()["federated_credential"]
    assert expr(fc["subject"]) == "azurerm_user_assigned_identity.function.principal_id"
    assert unq(fc["issuer"]) == "${local.cloud.issuer_authority}/${data.azurerm_client_config.current.tenant_id}/v2.0"
    issuers = {k: unq(v["issuer_authority"]) for k, v in rotator.locals()["clouds"].items()}
    assert issuers["public"] == "https://login.microsoftonline.com"
    assert [expr(a) for a in fc["audiences"]] == ["local.cloud.token_exchange_audience"]
    clouds = rotator.locals()["clouds"]
    audiences = {k: unq(v["token_exchange_audience"]) for k, v in clouds.items()}
    assert audiences == {
        "public": "api://AzureADTokenExchange",
        "usgovernment": "api://AzureADTokenExchangeUSGov",
        "china": "api://AzureADTokenExchangeChina",
    }
    sp = rotator.resource("azuread_service_principal", "target")
    assert expr(sp["client_id"]) == "azuread_application_registration.target[each.key].client_id"
    for r in (fic, sp, rotator.resource("azuread_application_registration", "target")):
        assert expr(r["for_each"]) == "local.app_registration_targets"
    # no client secret / password anywhere
    assert not rotator.resources("azuread_application_password")
    assert not rotator.resources("azuread_service_principal_password")


def test_target_app_service_principals_are_plain_workspace_members(rotator):
    sp = rotator.resource("databricks_service_principal", "target")
    assert expr(sp["application_id"]) == "local.target_client_ids[each.key]"
    for admin_like in ("workspace_access", "allow_cluster_create", "allow_instance_pool_create", "databricks_sql_access"):
        assert admin_like not in sp, f"{admin_like}: keep the defaults, grant in your own configuration"
    member = rotator.resource("databricks_group_member", "target")
    assert expr(member["group_id"]) == "databricks_group.pat_rotator[0].id"
    # never the workspace's admins group (only the identity, for OAuth-secret targets:
    # test_identity_is_admin_only_for_oauth_secret_targets)
    assert "admins" not in expr(member["group_id"])


def test_the_function_app_and_targets_use_one_databricks_provider_workspace(rotator):
    loc = rotator.locals()
    assert expr(loc["databricks_workspace_key"]) == "module.access.databricks_workspace_key"
    assert "local.databricks_workspace_key" in expr(loc["sp_workspace_url"])
    manual = rotator.outputs()["databricks_manual_steps"]
    assert "t.workspace != local.databricks_workspace_key" in expr(manual["value"])


def test_targets_reject_client_id_with_create_app_registration(rotator):
    conds = " ".join(str(v["condition"]) for v in rotator.variables()["targets"]["validation"])
    assert "t.client_id != null && t.create_app_registration" in conds


def test_client_id_rule_of_the_targets_module_without_terraform(targets_module):
    """The module's own `terraform test` cases run only where a terraform binary exists;
    this applies the same GUID pattern (simple enough to mean the same in RE2 and
    Python) and checks the lower-casing wherever pytest runs."""
    validations = targets_module.variables()["targets"]["validation"]
    cond = next(str(v["condition"]) for v in validations if "client_id" in str(v["condition"]) and "regex" in str(v["condition"]))
    pattern = re.search(r'regex\("([^"]+)"', cond).group(1).replace("\\\\", "\\")
    ok = ["0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D"]
    bad = ["pat-rotator-app", "{11111111-2222-3333-4444-555555555555}", "11111111222233334444555555555555", "11111111-2222-3333-4444-55555555555", ""]
    for value in ok:
        assert re.fullmatch(pattern, value), value
    for value in bad:
        assert not re.fullmatch(pattern, value), value
    pat_targets = expr(targets_module.locals()["pat_targets"])
    assert "lower(t.client_id)" in pat_targets
    assert '&& !t.federated' in pat_targets, "no workspace_resource_id for a client_id target"
