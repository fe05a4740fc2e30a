"""Shared helpers for the offline infra checks (python-hcl2 8.x parse trees).

python-hcl2 8.x keeps quotes on labels and string literals ('"custom"') and wraps
expressions as '${...}'. The helpers below normalise that for assertions.
"""

from __future__ import annotations

import re
from pathlib import Path

import hcl2
import pytest

INFRA = Path(__file__).resolve().parents[1]
REPO = INFRA.parent


def tf_files(root: Path = INFRA) -> list[Path]:
    return sorted(p for p in root.rglob("*.tf") if ".terraform" not in p.parts)


def parse(path: Path) -> dict:
    with path.open(encoding="utf-8") as fh:
        return hcl2.load(fh)


def unq(value):
    """'"text"' -> 'text'; other values unchanged."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1]
    return value


def expr(value) -> str:
    """'${a.b}' -> 'a.b' (string form of any value, for reference checks)."""
    text = str(value)
    if text.startswith("${") and text.endswith("}"):
        return text[2:-1]
    return text


class Module:
    """All blocks of the .tf files directly in one folder (one Terraform module)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.files = {p.name: parse(p) for p in sorted(folder.glob("*.tf"))}

    def blocks(self, kind: str) -> list:
        out = []
        for data in self.files.values():
            out.extend(data.get(kind, []))
        return out

    def resources(self, rtype: str) -> dict[str, dict]:
        found = {}
        for entry in self.blocks("resource"):
            for t, named in entry.items():
                if unq(t) == rtype:
                    for name, body in named.items():
                        found[unq(name)] = body
        return found

    def resource(self, rtype: str, name: str) -> dict:
        res = self.resources(rtype)
        assert name in res, f"{rtype}.{name} is missing (have: {sorted(res)})"
        return res[name]

    def data_sources(self, dtype: str) -> dict[str, dict]:
        found = {}
        for entry in self.blocks("data"):
            for t, named in entry.items():
                if unq(t) == dtype:
                    for name, body in named.items():
                        found[unq(name)] = body
        return found

    def variables(self) -> dict[str, dict]:
        out = {}
        for entry in self.blocks("variable"):
            for name, body in entry.items():
                out[unq(name)] = body
        return out

    def outputs(self) -> dict[str, dict]:
        out = {}
        for entry in self.blocks("output"):
            for name, body in entry.items():
                out[unq(name)] = body
        return out

    def locals(self) -> dict:
        out = {}
        for entry in self.blocks("locals"):
            for k, v in entry.items():
                if not k.startswith("__"):
                    out[k] = v
        return out

    def modules(self) -> dict[str, dict]:
        out = {}
        for entry in self.blocks("module"):
            for name, body in entry.items():
                out[unq(name)] = body
        return out


def first(block_list):
    """hcl2 gives nested blocks as lists; most appear once."""
    assert isinstance(block_list, list) and block_list, f"expected a block, got {block_list!r}"
    return block_list[0]


def comments(body: dict) -> list[str]:
    return [c["value"] for key in ("__comments__", "__inline_comments__") for c in body.get(key, [])]


ROTATOR = INFRA / "modules" / "pat-rotator"


@pytest.fixture(scope="session")
def rotator() -> Module:
    """The pat-rotator module: every resource of the deployment."""
    return Module(ROTATOR)


@pytest.fixture(scope="session")
def root() -> Module:
    """infra/ itself: providers, the module call, moved blocks, pass-through outputs."""
    return Module(INFRA)


@pytest.fixture(scope="session")
def targets_module() -> Module:
    return Module(INFRA / "modules" / "targets")


@pytest.fixture(scope="session")
def adf_example() -> Module:
    return Module(INFRA / "examples" / "data-factory")


# ---------------------------------------------------------------------------
# The contract (shared/spec/contract.md), wherever this checkout finds it
# ---------------------------------------------------------------------------

CONTRACT_CANDIDATES = [
    REPO.parent / "shared" / "spec" / "contract.md",
    REPO / "shared" / "spec" / "contract.md",
    Path("/work/shared/spec/contract.md"),
]


def contract_text() -> str | None:
    for path in CONTRACT_CANDIDATES:
        if path.is_file():
            return path.read_text(encoding="utf-8")
    return None


def contract_section(text: str, number: int) -> str:
    match = re.search(rf"^## {number}\..*?(?=^## {number + 1}\.|\Z)", text, re.S | re.M)
    assert match, f"contract section {number} not found"
    return match.group(0)
