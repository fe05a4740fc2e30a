"""Key Vault events (contract section 10, infra/modules/pat-rotator/events.tf): an Event Grid
system topic per vault of the targets unless existing_system_topic_ids names one, and, as
a second stage (enable_event_subscriptions, default false), a subscription of the function
SecretEvent per topic with at most 3 deliveries within one hour and dead-lettering to a
container of the function's storage account, written with the topic's identity.

The attributes are checked on the parsed HCL; which vaults get a topic and a subscription is
computed by terraform itself (`terraform console`) from the module's own expressions, copied
out of keyvault.tf and events.tf, over several inputs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROTATOR, comments, expr, first, unq

APP_ID = "azurerm_function_app_flex_consumption.this.id"


def test_one_system_topic_per_vault_unless_one_is_named(rotator):
    topic = rotator.resource("azurerm_eventgrid_system_topic", "key_vault")
    assert expr(topic["for_each"]) == "local.created_topic_vault_keys"
    assert unq(topic["topic_type"]) == "Microsoft.KeyVault.vaults"
    assert expr(topic["source_resource_id"]) == "local.vaults[each.key].id"
    assert expr(topic["location"]) == "local.vaults[each.key].location", "a system topic lives in its source's region"
    assert unq(first(topic["identity"])["type"]) == "SystemAssigned", "it dead-letters with its own identity"
    # Event Grid creates a system topic only in its source's subscription
    (pre,) = first(topic["lifecycle"])["precondition"]
    assert expr(pre["condition"]) == "local.vaults[each.key].subscription_id == lower(data.azurerm_client_config.current.subscription_id)"
    assert "existing_system_topic_ids" in unq(pre["error_message"])
    locals_ = rotator.locals()
    assert expr(locals_["created_topic_vault_keys"]) == "toset([for k in keys(local.vaults) : k if !contains(keys(var.existing_system_topic_ids), k)])"
    var = rotator.variables()["existing_system_topic_ids"]
    assert var["default"] == {} and "at most one system topic" in unq(var["description"])


def test_subscriptions_are_the_second_stage(rotator):
    sub = rotator.resource("azurerm_eventgrid_system_topic_event_subscription", "secret_event")
    assert expr(sub["for_each"]) == "var.enable_event_subscriptions ? toset(keys(local.vaults)) : toset([])"
    var = rotator.variables()["enable_event_subscriptions"]
    assert var["default"] is False and var["nullable"] is False
    assert "after the code is deployed" in unq(var["description"]) or "must already be deployed" in unq(var["description"])
    # it never runs ahead of a deployment made in the same apply, nor of its dead-letter role
    assert sorted(expr(d) for d in sub["depends_on"]) == ["azurerm_role_assignment.dead_letter_writer", "terraform_data.deploy_package"]
    assert expr(sub["system_topic"]) == "local.system_topics[each.key].name"
    assert expr(sub["resource_group_name"]) == "local.system_topics[each.key].resource_group_name"


def test_subscription_delivers_the_three_secret_events_to_secret_event(rotator):
    sub = rotator.resource("azurerm_eventgrid_system_topic_event_subscription", "secret_event")
    assert expr(sub["included_event_types"]) == "local.secret_event_types"
    assert [unq(t) for t in rotator.locals()["secret_event_types"]] == [
        "Microsoft.KeyVault.SecretNearExpiry",
        "Microsoft.KeyVault.SecretExpired",
        "Microsoft.KeyVault.SecretNewVersionCreated",
    ]
    endpoint = first(sub["azure_function_endpoint"])
    assert unq(endpoint["function_id"]) == "${" + APP_ID + "}/functions/SecretEvent"
    assert unq(sub["event_delivery_schema"]) == "EventGridSchema"
    assert "webhook_endpoint" not in sub, "the function endpoint type: Event Grid keeps the function key itself"
    # at most 3 delivery attempts within one hour (minutes)
    retry = first(sub["retry_policy"])
    assert retry["max_delivery_attempts"] == 3 and retry["event_time_to_live"] == 60


def test_dead_letters_go_to_a_container_of_the_function_storage(rotator):
    sub = rotator.resource("azurerm_eventgrid_system_topic_event_subscription", "secret_event")
    dest = first(sub["storage_blob_dead_letter_destination"])
    assert expr(dest["storage_account_id"]) == "azurerm_storage_account.host.id", "the function's storage account"
    assert expr(dest["storage_blob_container_name"]) == "azurerm_storage_container.dead_letter.name"
    container = rotator.resource("azurerm_storage_container", "dead_letter")
    assert expr(container["storage_account_id"]) == "azurerm_storage_account.host.id"
    assert unq(container["container_access_type"]) == "private"
    # the host account takes no shared key or SAS: dead-lettering uses the topic's identity
    assert rotator.resource("azurerm_storage_account", "host")["shared_access_key_enabled"] is False
    assert unq(first(sub["dead_letter_identity"])["type"]) == "SystemAssigned"
    role = rotator.resource("azurerm_role_assignment", "dead_letter_writer")
    assert expr(role["for_each"]) == "local.dead_letter_writers"
    assert unq(role["role_definition_name"]) == "Storage Blob Data Contributor"
    assert expr(role["scope"]) == "azurerm_storage_container.dead_letter.id", "that one container, not the account"
    assert expr(role["principal_id"]) == "each.value"
    writers = expr(rotator.locals()["dead_letter_writers"])
    assert "for k, t in azurerm_eventgrid_system_topic.key_vault : k => t.identity[0].principal_id" in writers
    assert "for k, t in data.azurerm_eventgrid_system_topic.existing" in writers and 'strcontains(i.type, "SystemAssigned")' in writers
    # an existing topic without a system-assigned identity is refused with the fix
    (pre,) = first(role["lifecycle"])["precondition"]
    assert expr(pre["condition"]) == "each.value != null" and "--identity systemassigned" in unq(pre["error_message"])


def test_an_existing_topic_is_read_only_for_the_second_stage(rotator):
    data = rotator.data_sources("azurerm_eventgrid_system_topic")["existing"]
    assert expr(data["for_each"]) == "var.enable_event_subscriptions ? local.existing_topics : {}"
    assert expr(data["name"]) == "each.value.name" and expr(data["resource_group_name"]) == "each.value.resource_group_name"


# ---------------------------------------------------------------------------
# Which vaults get a topic and a subscription: the module's expressions, evaluated
# ---------------------------------------------------------------------------

TERRAFORM = shutil.which("terraform")
SUB = "00000000-0000-0000-0000-000000000000"
OTHER_SUB = "11111111-1111-1111-1111-111111111111"
CREATED_VAULT = f"/subscriptions/{SUB}/resourceGroups/rg-pat/providers/Microsoft.KeyVault/vaults/patrot-kv-abc123"

# The locals that decide it, by name, and where they are.
LOCALS = {
    "keyvault.tf": ["target_key_vault", "used_existing_vault_keys", "existing_vaults", "vaults"],
    "events.tf": ["created_topic_vault_keys", "existing_topics"],
}
VARIABLES = ["location", "targets", "existing_key_vaults", "existing_system_topic_ids", "enable_event_subscriptions"]
# References to resources the stand-in does not have, replaced by values of the same shape.
STAND_INS = {
    "azurerm_key_vault.this.id": json.dumps(CREATED_VAULT),
    "data.azurerm_client_config.current.subscription_id": json.dumps(SUB),
    "local.cloud.key_vault_suffix": json.dumps("vault.azure.net"),
}


def block_text(text: str, start: int) -> str:
    """From `start` to the end of the balanced {...} / [...] / (...) expression that begins on
    that line, skipping heredocs."""
    depth, i, seen = 0, start, False
    while i < len(text):
        heredoc = re.match(r"<<-?(\w+)\n", text[i:])
        if heredoc:
            end = re.search(rf"^\s*{heredoc.group(1)}\s*$", text[i + heredoc.end():], re.M)
            i += heredoc.end() + end.end()
            continue
        c = text[i]
        if c in "{[(":
            depth, seen = depth + 1, True
        elif c in "}])":
            depth -= 1
        elif c == "\n" and depth == 0:
            return text[start:i]
        i += 1
        if seen and depth == 0 and (i >= len(text) or text[i] == "\n"):
            return text[start:i]
    raise AssertionError("unbalanced")


def extract_local(text: str, name: str) -> str:
    m = re.search(rf"^\s+{name}\s+=", text, re.M)
    assert m, f"local {name} not found"
    return block_text(text, m.start()).strip()


def extract_variable(text: str, name: str) -> str:
    m = re.search(rf'^variable "{name}" \{{', text, re.M)
    assert m, name
    return block_text(text, m.start())


@pytest.fixture(scope="module")
def decision_module(tmp_path_factory) -> Path:
    if TERRAFORM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no terraform binary on PATH")
        pytest.skip("skipped: no terraform binary on PATH")
    dest = tmp_path_factory.mktemp("events")
    variables = (ROTATOR / "variables.tf").read_text()
    parts = [extract_variable(variables, v) for v in VARIABLES]
    body = []
    for file, names in LOCALS.items():
        text = (ROTATOR / file).read_text()
        for name in names:
            local = extract_local(text, name)
            for ref, value in STAND_INS.items():
                local = local.replace(ref, value)
            assert "azurerm_" not in local.replace("Microsoft", ""), f"{name} still refers to a resource: {local}"
            body.append(local)
    parts.append("locals {\n" + "\n".join(body) + "\n}\n")
    parts.append("""
output "decision" {
  value = {
    vaults          = { for k, v in local.vaults : k => v }
    created_topics  = sort(tolist(local.created_topic_vault_keys))
    existing_topics = local.existing_topics
    subscriptions   = sort(tolist(var.enable_event_subscriptions ? toset(keys(local.vaults)) : toset([])))
    url_of          = { for k, v in local.existing_vaults : k => v.url }
  }
}
""")
    (dest / "main.tf").write_text("\n".join(parts))
    env = dict(os.environ, TF_CLI_CONFIG_FILE="/dev/null", TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1")
    proc = subprocess.run([TERRAFORM, "init", "-backend=false", "-input=false", "-no-color"], cwd=dest, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dest


def decide(module: Path, tmp_path: Path, **variables) -> dict:
    values = {"location": "westeurope", **variables}
    (tmp_path / "in.tfvars.json").write_text(json.dumps(values))
    env = dict(os.environ, TF_CLI_CONFIG_FILE="/dev/null", TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1")
    proc = subprocess.run([TERRAFORM, "plan", "-input=false", "-no-color", "-refresh=false", f"-var-file={tmp_path / 'in.tfvars.json'}", "-out", str(tmp_path / "plan")],
                          cwd=module, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    show = subprocess.run([TERRAFORM, "show", "-json", str(tmp_path / "plan")], cwd=module, env=env, capture_output=True, text=True, timeout=120)
    assert show.returncode == 0, show.stderr
    return json.loads(show.stdout)["planned_values"]["outputs"]["decision"]["value"]


def target(name, key_vault=None):
    t = {"name": name, "workspace": "new", "secret_name": f"{name}-pat"}
    if key_vault:
        t["key_vault"] = key_vault
    return t


SHARED = {"resource_id": f"/subscriptions/{SUB}/resourceGroups/rg-shared/providers/Microsoft.KeyVault/vaults/KV-Shared", "location": "northeurope"}
UNUSED = {"resource_id": f"/subscriptions/{SUB}/resourceGroups/rg-x/providers/Microsoft.KeyVault/vaults/kv-unused", "location": "westeurope"}


def test_the_created_vault_alone_gets_one_topic_and_no_subscription_by_default(decision_module, tmp_path):
    d = decide(decision_module, tmp_path, targets=[target("a"), target("b")])
    assert sorted(d["vaults"]) == ["default"]
    assert d["created_topics"] == ["default"] and d["subscriptions"] == []
    assert d["vaults"]["default"] == {"id": CREATED_VAULT, "location": "westeurope", "subscription_id": SUB}


def test_every_distinct_vault_of_the_targets_gets_one_topic(decision_module, tmp_path):
    d = decide(decision_module, tmp_path, targets=[target("a"), target("b", "shared"), target("c", "shared")],
               existing_key_vaults={"shared": SHARED, "unused": UNUSED}, enable_event_subscriptions=True)
    # two targets in "shared": one topic; a vault no target names: none
    assert d["created_topics"] == ["default", "shared"]
    assert d["subscriptions"] == ["default", "shared"], "one subscription per topic in the second stage"
    assert d["vaults"]["shared"] == {"id": SHARED["resource_id"], "location": "northeurope", "subscription_id": SUB}
    assert d["url_of"] == {"shared": "https://kv-shared.vault.azure.net"}


def test_a_named_existing_topic_replaces_the_created_one(decision_module, tmp_path):
    topic = f"/subscriptions/{SUB}/resourceGroups/rg-events/providers/Microsoft.EventGrid/systemTopics/kv-shared-topic"
    d = decide(decision_module, tmp_path, targets=[target("a"), target("b", "shared")], existing_key_vaults={"shared": SHARED},
               existing_system_topic_ids={"shared": topic}, enable_event_subscriptions=True)
    assert d["created_topics"] == ["default"], "no second topic on a vault that has one"
    assert d["existing_topics"] == {"shared": {"id": topic, "name": "kv-shared-topic", "resource_group_name": "rg-events"}}
    assert d["subscriptions"] == ["default", "shared"], "the existing topic is subscribed too"


def test_the_created_vault_may_name_its_existing_topic(decision_module, tmp_path):
    topic = f"/subscriptions/{SUB}/resourceGroups/rg-pat/providers/Microsoft.EventGrid/systemTopics/patrot-kv-abc123-0f1e"
    d = decide(decision_module, tmp_path, targets=[target("a")], existing_system_topic_ids={"default": topic})
    assert d["created_topics"] == [] and sorted(d["existing_topics"]) == ["default"]


def test_a_vault_in_another_subscription_is_seen_as_such(decision_module, tmp_path):
    other = {"resource_id": f"/subscriptions/{OTHER_SUB.upper()}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-other", "location": "westeurope"}
    d = decide(decision_module, tmp_path, targets=[target("a", "other")], existing_key_vaults={"other": other})
    # the topic's precondition compares this with the provider's subscription
    assert d["vaults"]["other"]["subscription_id"] == OTHER_SUB


def test_a_topic_for_an_unknown_vault_key_is_refused(decision_module, tmp_path):
    values = {"location": "westeurope", "targets": [target("a")],
              "existing_system_topic_ids": {"nope": f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.EventGrid/systemTopics/t"}}
    (tmp_path / "in.tfvars.json").write_text(json.dumps(values))
    env = dict(os.environ, TF_CLI_CONFIG_FILE="/dev/null", TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1")
    proc = subprocess.run([TERRAFORM, "plan", "-input=false", "-no-color", f"-var-file={tmp_path / 'in.tfvars.json'}"],
                          cwd=decision_module, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "existing_system_topic_ids" in proc.stderr, proc.stdout + proc.stderr
