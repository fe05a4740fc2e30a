"""Derives a provider schema (the subset of `terraform providers schema -json` that
tfschema.py reads) from a prebuilt cdktf provider package, whose jsii assembly
(.jsii) is generated from the provider's own schema: the databricks provider has no
published schema dump, but `@cdktf/provider-databricks` is generated from it.

  python cdktf_schema.py PACKAGE_DIR_OR_TGZ OUT.json [--only TYPE ...]

What it maps, per resource / data source class of the assembly:
  * the Terraform type name from the class docs ("Represents a {@link ...} databricks_x");
  * arguments from the `<Class>Config` struct: the snake_case name from each property's
    Terraform-registry doc link (`...#group_name`), `required` when the property is not
    optional, otherwise `optional`;
  * nested blocks: struct-typed properties (single block: max_items 1) and arrays of
    structs (list blocks), recursively; a required one gets min_items 1;
  * computed attributes: the class's read-only getters that are not arguments
    (`id`, `acl_principal_id`, ...), names converted from camelCase, type "dynamic".
What it cannot know: whether an argument is also computed, max_items of list blocks,
attribute element types (all "dynamic"), deprecations. The output is marked
"partial": a type missing from it is reported as unchecked, not as an error.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import tarfile
from pathlib import Path

LINK = re.compile(r"registry\.terraform\.io/providers/[^/]+/[^/]+/([^/]+)/docs/(resources|data-sources)/([a-z0-9_]+)(?:#([a-z0-9_]+))?")
META = {"count", "dependsOn", "forEach", "lifecycle", "provider", "provisioners", "connection"}


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def load_assembly(source: Path) -> dict:
    if source.is_dir():
        return json.loads((source / ".jsii").read_text(encoding="utf-8"))
    with tarfile.open(source) as tar:
        member = tar.getmember("package/.jsii")
        return json.load(io.TextIOWrapper(tar.extractfile(member), encoding="utf-8"))


def struct_of(tref: dict) -> tuple[str | None, bool]:
    """(fqn of a struct, is_list) for a block-typed property, else (None, False)."""
    if "fqn" in tref and tref["fqn"] != "cdktf.IResolvable":
        return tref["fqn"], False
    for alt in tref.get("union", {}).get("types", []):
        coll = alt.get("collection")
        if coll and coll.get("kind") == "array" and "fqn" in coll["elementtype"]:
            return coll["elementtype"]["fqn"], True
        if "fqn" in alt and alt["fqn"] != "cdktf.IResolvable":
            return alt["fqn"], False
    coll = tref.get("collection")
    if coll and coll.get("kind") == "array" and "fqn" in coll["elementtype"]:
        return coll["elementtype"]["fqn"], True
    return None, False


class Deriver:
    def __init__(self, assembly: dict):
        self.types = assembly["types"]
        self.version = None

    def prop_name(self, prop: dict) -> str:
        docs = prop.get("docs", {})
        for text in (docs.get("summary", ""), docs.get("remarks", "")):
            m = LINK.search(text)
            if m and m.group(4):
                self.version = self.version or m.group(1)
                return m.group(4)
        return snake(prop["name"])

    def block(self, struct_fqn: str, getters: list[dict] | None = None) -> dict:
        struct = self.types[struct_fqn]
        attrs, blocks = {}, {}
        for prop in struct.get("properties", []):
            if prop["name"] in META:
                continue
            name = self.prop_name(prop)
            nested, is_list = struct_of(prop["type"])
            if nested and self.types.get(nested, {}).get("datatype"):
                bt = {"nesting_mode": "list", "block": self.block(nested)}
                if not is_list:
                    bt["max_items"] = 1
                if not prop.get("optional"):
                    bt["min_items"] = 1
                blocks[name] = bt
            else:
                attrs[name] = {"type": "dynamic", **({"optional": True} if prop.get("optional") else {"required": True})}
        for getter in getters or []:
            name = snake(getter["name"])
            if getter.get("static") or name.endswith("_input") or name in attrs or name in blocks:
                continue
            if name in ("tf_resource_type", "fqn", "friendly_unique_id"):
                continue
            attrs[name] = {"type": "dynamic", "computed": True}
        return {"attributes": attrs, "block_types": blocks}

    def derive(self, only: set[str] | None = None) -> dict:
        resources, data_sources = {}, {}
        for fqn, t in self.types.items():
            if t.get("kind") != "class" or t.get("base") not in ("cdktf.TerraformResource", "cdktf.TerraformDataSource"):
                continue
            m = LINK.search(t.get("docs", {}).get("summary", ""))
            if not m:
                continue
            self.version = self.version or m.group(1)
            tf_type = re.search(r"\b(databricks_[a-z0-9_]+)\}", t["docs"]["summary"])
            tf_type = tf_type.group(1) if tf_type else None
            if not tf_type or (only and tf_type not in only):
                continue
            config = fqn + "Config"
            if config not in self.types:
                continue
            getters = [p for p in t.get("properties", []) if p.get("immutable") and not p.get("static")]
            schema = {"block": self.block(config, getters)}
            (resources if m.group(2) == "resources" else data_sources)[tf_type] = schema
        return {"resource_schemas": resources, "data_source_schemas": data_sources}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("package", type=Path, help="extracted npm package folder or its .tgz")
    ap.add_argument("out", type=Path)
    ap.add_argument("--only", nargs="*", help="keep only these resource/data source types")
    args = ap.parse_args(argv)
    assembly = load_assembly(args.package)
    deriver = Deriver(assembly)
    schemas = deriver.derive(set(args.only) if args.only else None)
    doc = {
        "format_version": "1.0",
        "partial": True,
        "derived_from": f"npm {assembly['name']}@{assembly['version']} (jsii assembly), provider version {deriver.version}",
        "provider_schemas": {"registry.terraform.io/databricks/databricks": schemas},
    }
    args.out.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{args.out}: {len(schemas['resource_schemas'])} resources, {len(schemas['data_source_schemas'])} data sources, provider {deriver.version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
