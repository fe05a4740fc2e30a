"""Checks the Terraform under infra/ against real provider schemas (the JSON that
`terraform providers schema -json` prints), offline and without provider binaries.

For every resource and data source of a provider whose schema is loaded, in every
module folder (root, modules/*, examples/*):

  * the type exists in the provider schema;
  * every argument is an attribute of the schema that can be set (not computed-only),
    every nested block is a block type of the schema, recursively (block_types nesting),
    including the `content` of `dynamic "x"` blocks; meta-arguments (count, for_each,
    depends_on, provider, lifecycle, provisioner, connection) are allowed where
    Terraform allows them;
  * every required attribute is set, every block with min_items >= 1 is present
    (statically or as a dynamic block), a single/max_items = 1 block appears once;
  * every attribute reference `TYPE.NAME.attr...` / `data.TYPE.NAME.attr...` in any
    expression of that module names a declared resource/data source, and its path
    (through nested blocks like `.identity[0].principal_id` and object/list/map
    attribute types) exists in the schema.

Deprecated arguments are reported as warnings. Value ranges and enums are not in a
schema (they live in provider code) and are not checked here.

Usage: python tfschema.py [--schema-dir DIR] [PATH ...]   (default PATH: infra/)
Exit 0 when no error was found and something was checked, 1 otherwise.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import hcl2

HERE = Path(__file__).resolve().parent
INFRA = HERE.parent
REPO = INFRA.parent

SCHEMA_DIR_CANDIDATES = [
    REPO.parent / "shared" / "terraform-schemas",
    REPO / "shared" / "terraform-schemas",
    Path("/work/shared/terraform-schemas"),
]
# Schemas this repository derives and ships itself (see infra/README.md).
VENDORED_SCHEMA_DIR = HERE / "schemas"

RESOURCE_META = {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection"}
DATA_META = {"count", "for_each", "depends_on", "provider", "lifecycle"}

REF_RE = re.compile(
    r"(?<![\w.\-])(data\.)?((?:azurerm|azuread|databricks)_[a-z0-9_]+)\.([A-Za-z_][\w-]*)"
    r"((?:\[[^\]]*\]|\.\*|\.[A-Za-z_][\w-]*)*)"
)
SEGMENT_RE = re.compile(r"\[[^\]]*\]|\.\*|\.([A-Za-z_][\w-]*)")


def unq(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == '"' and text[-1] == '"' else text


@dataclass
class Provider:
    prefix: str
    label: str  # e.g. "azurerm 4.79.0"
    resources: dict
    data_sources: dict
    partial: bool = False  # a derived subset (cdktf_schema.py): a missing type is unchecked, not an error


@dataclass
class Report:
    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    resources: int = 0
    data_sources: int = 0
    references: int = 0
    modules: int = 0
    unchecked: list = field(default_factory=list)  # (where, type) of providers without schema

    @property
    def checked(self) -> int:
        return self.resources + self.data_sources


def load_provider(path: Path) -> Provider:
    doc = json.loads(path.read_text(encoding="utf-8"))
    (source, schema), = doc["provider_schemas"].items()
    prefix = source.rsplit("/", 1)[-1]
    # file names are <provider>-<version>.json
    version = path.stem.split("-", 1)[1] if "-" in path.stem else "?"
    partial = bool(doc.get("partial"))
    label = f"{prefix} {version}" + (" (derived, partial)" if partial else "")
    return Provider(prefix, label, schema.get("resource_schemas", {}), schema.get("data_source_schemas", {}), partial)


def find_schema_files(schema_dir: Path | None = None) -> list[Path]:
    dirs = [schema_dir] if schema_dir else []
    if not dirs and os.environ.get("TF_SCHEMA_DIR"):
        dirs = [Path(os.environ["TF_SCHEMA_DIR"])]
    if not dirs:
        dirs = [next((d for d in SCHEMA_DIR_CANDIDATES if d.is_dir()), SCHEMA_DIR_CANDIDATES[0])]
    files = []
    for d in dirs:
        files += sorted(d.glob("*.json"))
    if VENDORED_SCHEMA_DIR.is_dir():
        files += sorted(VENDORED_SCHEMA_DIR.glob("*.json"))
    return files


class Checker:
    def __init__(self, providers: list[Provider]):
        self.providers = {p.prefix: p for p in providers}
        self.report = Report()

    # -- helpers -----------------------------------------------------------------------
    def provider_for(self, rtype: str) -> Provider | None:
        return self.providers.get(rtype.split("_", 1)[0])

    def err(self, where: str, msg: str):
        self.report.errors.append(f"{where}: {msg}")

    @staticmethod
    def suggest(name: str, options) -> str:
        close = difflib.get_close_matches(name, list(options), n=1)
        return f" (did you mean {close[0]!r}?)" if close else ""

    @staticmethod
    def is_block(value) -> bool:
        return isinstance(value, list) and bool(value) and all(isinstance(v, dict) and v.get("__is_block__") for v in value)

    # -- blocks ------------------------------------------------------------------------
    def check_body(self, where: str, body: dict, block: dict, meta: set[str]):
        attrs = block.get("attributes", {})
        blocks = block.get("block_types", {})
        static_blocks: dict[str, int] = {}
        dynamic_blocks: set[str] = set()
        for key, value in body.items():
            if key.startswith("__") or key in meta:
                continue
            if key == "dynamic":
                for entry in value:
                    for label, dyn in entry.items():
                        name = unq(label)
                        if name not in blocks:
                            self.err(where, f"dynamic block {name!r} is not a block of this schema{self.suggest(name, blocks)}")
                            continue
                        dynamic_blocks.add(name)
                        for content in dyn.get("content", []):
                            self.check_body(f"{where}.{name}(dynamic)", content, blocks[name]["block"], set())
                        if not dyn.get("content"):
                            self.err(where, f"dynamic block {name!r} has no content block")
                continue
            if key in attrs:
                spec = attrs[key]
                if self.is_block(value):
                    self.err(where, f"{key!r} is an attribute, not a block: write `{key} = ...`")
                if spec.get("computed") and not spec.get("optional") and not spec.get("required"):
                    self.err(where, f"{key!r} is read-only (computed) and cannot be set")
                if spec.get("deprecated"):
                    self.report.warnings.append(f"{where}: {key!r} is deprecated")
                continue
            if key in blocks:
                if not self.is_block(value):
                    self.err(where, f"{key!r} is a block, not an attribute: write `{key} {{ ... }}`")
                    continue
                bt = blocks[key]
                static_blocks[key] = len(value)
                max_items = bt.get("max_items") or (1 if bt.get("nesting_mode") == "single" else 0)
                if max_items and len(value) > max_items:
                    self.err(where, f"block {key!r} appears {len(value)} times, at most {max_items} allowed")
                for i, inner in enumerate(value):
                    self.check_body(f"{where}.{key}[{i}]" if len(value) > 1 else f"{where}.{key}", inner, bt["block"], set())
                continue
            self.err(where, f"unknown argument {key!r}{self.suggest(key, list(attrs) + list(blocks))}")
        for name, spec in attrs.items():
            if spec.get("required") and name not in body:
                self.err(where, f"required argument {name!r} is missing")
        for name, bt in blocks.items():
            need = bt.get("min_items") or 0
            if need and name not in dynamic_blocks and static_blocks.get(name, 0) < need:
                self.err(where, f"required block {name!r} is missing (at least {need})")

    # -- references --------------------------------------------------------------------
    def walk_type(self, where, ref, tp, segments) -> None:
        for kind, name in segments:
            if tp == "dynamic":
                return
            if kind == "index":
                if isinstance(tp, list) and tp[0] in ("list", "set", "map", "tuple"):
                    tp = tp[1] if tp[0] != "tuple" else "dynamic"
                    continue
                self.err(where, f"{ref}: cannot index into {json.dumps(tp)}")
                return
            if isinstance(tp, list) and tp[0] == "object":
                if name not in tp[1]:
                    self.err(where, f"{ref}: {name!r} is not an attribute of {json.dumps(tp)}{self.suggest(name, tp[1])}")
                    return
                tp = tp[1][name]
            elif isinstance(tp, list) and tp[0] == "map":
                tp = tp[1]
            else:
                self.err(where, f"{ref}: {name!r} does not exist on a value of type {json.dumps(tp)}")
                return

    def check_reference(self, where: str, declared: set, match: re.Match):
        is_data, rtype, name, rest = bool(match.group(1)), match.group(2), match.group(3), match.group(4)
        ref = match.group(0)
        provider = self.provider_for(rtype)
        kind = "data source" if is_data else "resource"
        if (is_data, rtype, name) not in declared:
            self.err(where, f"{ref}: no {kind} {rtype}.{name} is declared in this module")
            return
        if provider is None:
            return
        self.report.references += 1
        schema = (provider.data_sources if is_data else provider.resources).get(rtype)
        if schema is None:
            return  # the declaration itself is reported as an unknown type
        segments = []
        for seg in SEGMENT_RE.finditer(rest):
            segments.append(("attr", seg.group(1)) if seg.group(1) else ("index", None))
        block = schema["block"]
        owner = rtype
        # leading indexes: count / for_each instances
        while segments and segments[0][0] == "index":
            segments.pop(0)
        while segments:
            kind_, attr = segments.pop(0)
            if kind_ == "index":
                continue  # an index into a nested block list
            if attr in block.get("attributes", {}):
                self.walk_type(where, ref, block["attributes"][attr]["type"], segments)
                return
            if attr in block.get("block_types", {}):
                bt = block["block_types"][attr]
                if bt.get("nesting_mode") in ("list", "set") and not (segments and segments[0][0] == "index"):
                    if segments:  # e.g. .identity.principal_id: needs [0]
                        self.err(where, f"{ref}: {attr!r} is a list of blocks; index it ({attr}[0]) before reading {segments[0][1]!r}")
                        return
                block = bt["block"]
                owner = f"{owner}.{attr}"
                continue
            options = list(block.get("attributes", {})) + list(block.get("block_types", {}))
            self.err(where, f"{ref}: {attr!r} is not an attribute of {owner}{self.suggest(attr, options)}")
            return

    @staticmethod
    def strings(value):
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for k, v in value.items():
                if k.startswith("__"):
                    continue
                yield k
                yield from Checker.strings(v)
        elif isinstance(value, list):
            for v in value:
                yield from Checker.strings(v)

    # -- modules -----------------------------------------------------------------------
    def check_module(self, folder: Path, files: list[Path]):
        self.report.modules += 1
        parsed = {}
        for path in files:
            with path.open(encoding="utf-8") as fh:
                parsed[path] = hcl2.load(fh)
        declared = set()
        for path, doc in parsed.items():
            rel = path.relative_to(folder.parent) if folder.parent in path.parents else path
            for section, is_data in (("resource", False), ("data", True)):
                for entry in doc.get(section, []):
                    for rtype_q, named in entry.items():
                        rtype = unq(rtype_q)
                        for name_q, body in named.items():
                            name = unq(name_q)
                            declared.add((is_data, rtype, name))
                            where = f"{rel}: {'data.' if is_data else ''}{rtype}.{name}"
                            provider = self.provider_for(rtype)
                            if provider is None:
                                if "_" in rtype and rtype.split("_", 1)[0] not in ("terraform",):
                                    self.report.unchecked.append(f"{'data.' if is_data else ''}{rtype}.{name} ({rel})")
                                continue
                            table = provider.data_sources if is_data else provider.resources
                            if rtype not in table and provider.partial:
                                self.report.unchecked.append(f"{'data.' if is_data else ''}{rtype}.{name} ({rel}; not in the {provider.label} schema)")
                                continue
                            if rtype not in table:
                                self.err(where, f"{'data source' if is_data else 'resource'} type {rtype!r} does not exist in {provider.label}{self.suggest(rtype, table)}")
                                continue
                            if is_data:
                                self.report.data_sources += 1
                            else:
                                self.report.resources += 1
                            self.check_body(where, body, table[rtype]["block"], DATA_META if is_data else RESOURCE_META)
        for path, doc in parsed.items():
            rel = path.relative_to(folder.parent) if folder.parent in path.parents else path
            # `removed` / `moved` blocks name addresses that are (deliberately) no longer
            # declared; they are not references to check.
            doc = {k: v for k, v in doc.items() if k not in ("removed", "moved")}
            for text in self.strings(doc):
                if "${" not in text:
                    continue  # a plain string literal, no expression
                for match in REF_RE.finditer(text):
                    self.check_reference(str(rel), declared, match)

    def check_tree(self, root: Path, exclude: tuple[Path, ...] = ()):
        folders: dict[Path, list[Path]] = {}
        for path in sorted(root.rglob("*.tf")):
            if ".terraform" in path.parts or any(ex == path or ex in path.parents for ex in exclude):
                continue
            folders.setdefault(path.parent, []).append(path)
        for folder, files in sorted(folders.items()):
            self.check_module(folder, files)
        return self.report


def run(paths: list[Path], schema_dir: Path | None = None, exclude: tuple[Path, ...] = ()) -> tuple[Report, list[Provider]]:
    files = find_schema_files(schema_dir)
    providers = [load_provider(f) for f in files]
    checker = Checker(providers)
    for p in paths:
        checker.check_tree(p, exclude)
    return checker.report, providers


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--schema-dir", type=Path, help="folder with <provider>-<version>.json schema files")
    ap.add_argument("paths", nargs="*", type=Path)
    args = ap.parse_args(argv)
    paths = [p.resolve() for p in args.paths] or [INFRA]
    # The checker's own failing fixtures are not part of the configuration (they are
    # checked only when named).
    exclude = () if args.paths else (HERE / "schema_fixtures",)
    report, providers = run(paths, args.schema_dir, exclude)
    names = {p.prefix for p in providers}
    for w in report.warnings:
        print(f"warning: {w}")
    for e in report.errors:
        print(f"ERROR   {e}")
    missing = {"azurerm", "azuread"} - names
    if missing:
        print(f"ERROR   no schema file for {sorted(missing)} (looked in --schema-dir, TF_SCHEMA_DIR, {[str(d) for d in SCHEMA_DIR_CANDIDATES]})")
    if report.unchecked:
        print(f"ERROR   not schema-checked (no schema for them): {', '.join(report.unchecked)}")
    # Every resource of infra/ must be checked: an unchecked one fails the run (for a
    # databricks type missing from the derived schema, regenerate it, infra/README.md).
    ok = not report.errors and not missing and report.checked > 0 and not report.unchecked
    print(
        f"schema check: {report.resources} resources, {report.data_sources} data sources, "
        f"{report.references} attribute references in {report.modules} modules against "
        f"{', '.join(sorted(p.label for p in providers))}: {len(report.errors)} errors, "
        f"{len(report.warnings)} warnings, {len(report.unchecked)} unchecked -> {'ok' if ok else 'FAILED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
