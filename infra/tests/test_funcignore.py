"""The repository's .funcignore, applied the way Azure Functions Core Tools applies it when
`func azure functionapp publish` runs from the repository root: its GitIgnoreParser
(Azure/azure-functions-core-tools @ 3ee97a63, src/Cli/func/Common/GitIgnoreParser.cs)
turns the patterns into one regular expression anchored at the start of each file's path
relative to the root, and FileSystemHelpers.GetLocalFiles (same commit,
src/Cli/func/Common/FileSystemHelpers.cs:131-151) uploads what it accepts, never .git,
.vscode, .funcignore, .gitignore, local.settings.json. The port below follows that code."""

from __future__ import annotations

import re
import subprocess

import pytest

from conftest import REPO

ALWAYS_SKIPPED_DIRS = {".git", ".vscode"}
ALWAYS_SKIPPED_FILES = {".funcignore", ".gitignore", "local.settings.json", "project.lock.json"}


def prepare(pattern: str) -> str:
    # PrepareRegexPattern: escape, then ** -> (.+), * -> ([^\/]+)
    escaped = re.sub(r"[\-\[\]\/\{\}\(\)\+\?\.\\\^\$\|]", lambda m: "\\" + m.group(0), pattern)
    return escaped.replace("**", "(.+)").replace("*", "([^\\/]+)")


class CoreToolsIgnore:
    def __init__(self, text: str):
        positive, negative = [], []
        for line in (l.strip() for l in text.split("\n")):
            if not line or line.startswith("#"):
                continue
            neg = line.startswith("!")
            line = line[1:] if neg else line
            line = line[1:] if line.startswith("/") else line
            (negative if neg else positive).append(line)

        def compile_(items):
            items = sorted(items)
            if not items:
                return re.compile(r"$^")
            return re.compile("^((" + ")|(".join(prepare(i) for i in items) + "))\\b", re.ASCII)

        self.positive, self.negative = compile_(positive), compile_(negative)

    def accepts(self, path: str) -> bool:
        return bool(self.negative.match(path)) or not self.positive.match(path)


def uploaded(paths: list[str]) -> set[str]:
    ignore = CoreToolsIgnore((REPO / ".funcignore").read_text())
    out = set()
    for p in paths:
        parts = p.split("/")
        if any(d in ALWAYS_SKIPPED_DIRS for d in parts[:-1]) or parts[-1] in ALWAYS_SKIPPED_FILES:
            continue
        if ignore.accepts(p):
            out.add(p)
    return out


def test_the_port_behaves_like_core_tools_on_its_own_cases():
    # the semantics the comment in .funcignore states, checked on the port itself
    ig = CoreToolsIgnore("target/\n*.md\n.venv\n!keep.md\n")
    assert not ig.accepts("target/release/pat-rotator")
    assert ig.accepts("targets.txt")
    assert not ig.accepts("README.md") and ig.accepts("docs/README.md") and ig.accepts("keep.md")
    assert not ig.accepts(".venv/bin/python") and not ig.accepts(".venv-hcl2/bin/python")


def repository_paths() -> list[str]:
    tracked = subprocess.run(["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True, check=True).stdout.split()
    # what a working checkout also holds after the documented commands (not in git)
    untracked = [
        "target/release/pat-rotator", "target/debug/pat-rotator", "target/x86_64-unknown-linux-gnu/release/pat-rotator",
        "dist/pat-rotator.zip", ".venv-hcl2/bin/python", ".venv-interop/lib/python3.11/site-packages/x.py",
        ".venv-zig/bin/cargo-zigbuild", ".venv-checkov/bin/checkov", ".venv-kql/node_modules/@kusto/language-service-next/bridge.js",
        ".venv/bin/python", ".emulators/ca.pem", ".azurite/__blobstorage__/x", "node_modules/azurite/package.json",
        "infra/.terraform/providers/x", "infra/terraform.tfstate", "__pycache__/x.pyc", "docs/RUNBOOK.md",
        ".github/workflows/release.yml", "pat-rotator",
    ]
    return sorted(set(tracked) | set(untracked))


def test_publish_uploads_exactly_the_functions_app():
    up = uploaded(repository_paths())
    assert up == {"host.json", "RotatePat/function.json", "ProvisionPat/function.json", "SecretEvent/function.json", "Status/function.json", "pat-rotator"}, sorted(up)


@pytest.mark.parametrize("path", ["target/release/pat-rotator", ".venv-hcl2/bin/python", ".git/HEAD", "tests/engine.rs",
                                  "infra/main.tf", "bench/run.sh", "src/main.rs", "Cargo.toml", "local.settings.json"])
def test_these_stay_home(path):
    assert path not in uploaded([path])
