"""The split of infra/ into a reusable module (modules/pat-rotator, no provider blocks) and a
thin root: every resource that lived in the root before has a moved block, the root
forwards every input and output unchanged, and no module configures a provider.
A `terraform plan` over a stand-in of the old and the new layout (terraform_data in
place of every provider resource, same names, counts and for_each keys) shows that the
moved blocks leave nothing to create or destroy."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import INFRA, ROTATOR, Module, expr, unq

# Resources added to the module after the split: they never had a root address, so they
# have no moved block. Anything else in the module must have one.
NEW_SINCE_SPLIT = {
    "databricks_group_member.function_admin",  # section 9 targets: admin where needed
    "terraform_data.tokens_acl_bootstrap",  # a created workspace's tokens ACL needs a token
    "azurerm_role_definition.secrets_writer",  # the optional custom vault role
    "azurerm_role_assignment.secrets_writer",
    # Key Vault events (contract section 10): topics, dead letters, the second stage
    "azurerm_eventgrid_system_topic.key_vault",
    "azurerm_eventgrid_system_topic_event_subscription.secret_event",
    "azurerm_storage_container.dead_letter",
    "azurerm_role_assignment.dead_letter_writer",
    # targets in existing vaults
    "azurerm_role_assignment.existing_key_vault",
    # targets_source = "blob" (contract section 2, PAT_TARGETS_BLOB)
    "azurerm_storage_account.targets",
    "azurerm_storage_container.targets",
    "azurerm_storage_blob.targets",
    "azurerm_role_assignment.targets_blob_reader",
    "azurerm_monitor_diagnostic_setting.targets_blob",
    # the workbook
    "azurerm_application_insights_workbook.this",
    # an existing workspace's group gets token CAN_USE without replacing the ACL
    "terraform_data.grant_token_use",
}


def module_resources(folder: Path) -> dict[str, dict]:
    found = {}
    for entry in Module(folder).blocks("resource"):
        for rtype, named in entry.items():
            for name, body in named.items():
                found[f"{unq(rtype)}.{unq(name)}"] = body
    return found


def moved_blocks(module: Module) -> list[tuple[str, str]]:
    return [(expr(b["from"]), expr(b["to"])) for b in module.blocks("moved")]


def test_every_pre_split_resource_has_a_moved_block(root):
    resources = module_resources(ROTATOR)
    moves = moved_blocks(root)
    sources = [f for f, _ in moves]
    assert len(sources) == len(set(sources)), "a resource is moved twice"
    expected = {a for a in resources if a not in NEW_SINCE_SPLIT} | {"module.targets"}
    missing = sorted(expected - set(sources))
    assert not missing, f"resources of modules/pat-rotator without a moved block in infra/moved.tf: {missing}"
    for frm, to in moves:
        # the same address, one module level down; count / for_each instances move with it
        assert to == f"module.pat_rotator.{frm}", (frm, to)
        assert frm in resources or frm == "module.targets", f"moved block for {frm}: no such resource in the module"
    assert unq(root.modules()["pat_rotator"]["source"]) == "./modules/pat-rotator"


def test_no_module_configures_a_provider():
    for folder in sorted(p for p in (INFRA / "modules").iterdir() if p.is_dir()):
        module = Module(folder)
        assert not module.blocks("provider"), f"{folder.name} configures a provider"


def test_the_root_forwards_every_input_unchanged(root, rotator):
    mod_vars, root_vars = rotator.variables(), root.variables()
    assert set(root_vars) == set(mod_vars) | {"subscription_id"}
    call = root.modules()["pat_rotator"]
    passed = {k for k in call if not k.startswith("__") and k != "source"}
    assert passed == set(mod_vars), sorted(passed ^ set(mod_vars))
    for name, body in mod_vars.items():
        assert expr(call[name]) == f"var.{name}", name
        assert str(root_vars[name].get("type")) == str(body.get("type")), f"{name}: root and module types differ"
        assert root_vars[name].get("default", "<none>") == body.get("default", "<none>"), f"{name}: root and module defaults differ"
        assert root_vars[name].get("nullable", True) == body.get("nullable", True), name


def test_the_root_forwards_every_output_unchanged(root, rotator):
    mod_outs, root_outs = rotator.outputs(), root.outputs()
    assert set(root_outs) == set(mod_outs)
    for name, body in mod_outs.items():
        assert expr(root_outs[name]["value"]) == f"module.pat_rotator.{name}", name
        assert root_outs[name].get("sensitive", False) == body.get("sensitive", False), name


def test_providers_follow_azure_cloud(root):
    providers = {}
    for entry in root.blocks("provider"):
        for name, body in entry.items():
            providers[unq(name)] = body
    assert set(providers) == {"azurerm", "azuread", "databricks"}
    assert expr(providers["azurerm"]["environment"]) == "var.azure_cloud"
    assert expr(providers["azuread"]["environment"]) == "var.azure_cloud"
    assert expr(providers["databricks"]["azure_environment"]) == "var.azure_cloud"
    assert "module.pat_rotator.databricks_workspace.url" in expr(providers["databricks"]["host"])
    # the three names azurerm, azuread and databricks accept alike
    cond = str(root.variables()["azure_cloud"].get("validation", [{}])[0].get("condition", "")) or str(
        Module(ROTATOR).variables()["azure_cloud"]["validation"][0]["condition"]
    )
    assert '["public", "usgovernment", "china"]' in cond


def test_examples_call_the_module_not_the_root():
    for main in sorted((INFRA / "examples").glob("*/main.tf")):
        module = Module(main.parent)
        for name, call in module.modules().items():
            assert unq(call["source"]) == "../../modules/pat-rotator", f"{main}: module {name} must call modules/pat-rotator"
        assert {unq(n) for e in module.blocks("provider") for n in e} >= {"azurerm", "azuread", "databricks"}, main


def test_backend_example_uses_entra_auth():
    import hcl2

    text = (INFRA / "backend.tf.example").read_text()
    backend = hcl2.loads(text)["terraform"][0]["backend"][0]
    cfg = backend['"azurerm"'] if '"azurerm"' in backend else backend["azurerm"]
    assert cfg["use_azuread_auth"] is True, "state access with Entra ID, not an account key"
    for key in ("resource_group_name", "storage_account_name", "container_name", "key"):
        assert key in cfg, key
    assert "host key" in text and "use_azuread_auth" in text


# ---------------------------------------------------------------------------
# A real terraform plan over stand-ins: old layout (all at the root) applied, then the
# new layout (module + moved.tf) planned. Only moves may show.
# ---------------------------------------------------------------------------

TERRAFORM = shutil.which("terraform")


def stand_in(body: dict, name: str) -> str:
    """A terraform_data with the same count / for_each shape; keys are made up but the
    same in both layouts."""
    meta = ""
    if "count" in body:
        meta = "  count = 1\n"
    elif "for_each" in body:
        meta = '  for_each = toset(["a", "b"])\n'
    return f'resource "terraform_data" "{name}" {{\n{meta}  input = "{name}"\n}}\n'


def stand_in_name(address: str) -> str:
    return address.replace(".", "__")


@pytest.mark.skipif(TERRAFORM is None, reason="no terraform binary on PATH")
def test_moved_blocks_plan_only_moves_on_stand_ins(tmp_path, root):
    resources = {a: b for a, b in module_resources(ROTATOR).items() if a not in NEW_SINCE_SPLIT}
    moves = moved_blocks(root)
    env = dict(os.environ, TF_CLI_CONFIG_FILE="/dev/null", TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1", NO_COLOR="1")

    def tf(args, cwd):
        return subprocess.run([TERRAFORM, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)

    work = tmp_path / "work"
    work.mkdir()
    old = "".join(stand_in(b, stand_in_name(a)) for a, b in resources.items())
    (work / "main.tf").write_text(old)
    assert tf(["init", "-input=false"], work).returncode == 0
    applied = tf(["apply", "-auto-approve", "-input=false"], work)
    assert applied.returncode == 0, applied.stderr
    # the new layout: the stand-ins in a module, the root's moved blocks rewritten to them
    (work / "mod").mkdir()
    (work / "mod" / "main.tf").write_text(old)
    new_moves = "".join(
        f"moved {{\n  from = terraform_data.{stand_in_name(f)}\n  to   = module.pat_rotator.terraform_data.{stand_in_name(f)}\n}}\n"
        for f, _ in moves
        if f != "module.targets"
    )
    (work / "main.tf").write_text('module "pat_rotator" {\n  source = "./mod"\n}\n' + new_moves)
    assert tf(["init", "-input=false"], work).returncode == 0
    plan = tf(["plan", "-input=false", "-no-color"], work)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "Plan: 0 to add, 0 to change, 0 to destroy." in plan.stdout, plan.stdout
    moved = re.findall(r"^  # (\S+) has moved to module\.pat_rotator\.(\S+)$", plan.stdout, re.M)
    instances = sum(2 if "for_each" in b else 1 for b in resources.values())
    assert len(moved) == instances, f"{len(moved)} instances moved, {instances} exist"
    assert all(a == b for a, b in moved)


def test_readme_tables_name_every_input_and_output(rotator):
    readme = (INFRA / "README.md").read_text()
    inputs = readme[readme.index("### Inputs"):readme.index("### Outputs")]
    outputs = readme[readme.index("### Outputs"):readme.index("## Upgrading")]
    for name in rotator.variables():
        assert f"| `{name}` |" in inputs, f"input {name} missing from infra/README.md"
    for name in rotator.outputs():
        assert f"`{name}`" in outputs, f"output {name} missing from infra/README.md"
