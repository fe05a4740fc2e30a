"""Every Terraform file under infra/ parses (syntax check without providers)."""

from pathlib import Path

import hcl2
import pytest

from conftest import INFRA

FILES = sorted(
    p
    for pattern in ("*.tf", "*.tfvars", "*.tftest.hcl")
    for p in INFRA.rglob(pattern)
    if ".terraform" not in p.parts
)


def test_the_file_list_is_not_empty():
    names = {p.name for p in FILES}
    assert {"main.tf", "variables.tf", "outputs.tf", "versions.tf", "deploy.tf", "minimal.tfvars"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_parses(path: Path):
    with path.open(encoding="utf-8") as fh:
        data = hcl2.load(fh)
    assert isinstance(data, dict)
