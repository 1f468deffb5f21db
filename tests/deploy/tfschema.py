"""Offline "validate-lite" for terraform/: the google provider's schema without the provider.

`terraform validate` needs the google provider binary, which cannot be downloaded here. The
npm package @cdktf/provider-google 16.12.1 carries the schema of google provider 6.50.0 in
its jsii assembly (`package/.jsii`, a ~98 MB JSON):

* one class per resource / data source, whose doc link names the terraform type
  (`.../docs/resources/cloud_run_v2_service` -> `google_cloud_run_v2_service`);
* one "datatype" interface per resource configuration and per nested block; each property's
  doc anchor is its terraform name (`...#min_instance_count CloudRunV2Service#min_instance_count`),
  `optional` is absent on required ones, and a property whose type is (a list of) another
  datatype interface is a nested block;
* the class's own non-static properties without the `Input` suffix are the attributes a
  reference may read (computed ones included).

`build_schema` condenses that into a small JSON of names (a few MB, cached in .deploy-tools/).
`check_schema` walks python-hcl2's output (tests/deploy/hcl_dump.py) and reports unknown
resource types, arguments and blocks, missing required ones, a single block given twice,
and references to attributes a resource does not have. `check_wiring` does what
`terraform validate` would do for the modules' own wiring: every `var.`, `local.` and
`module.X.Y` reference resolves, and every module call passes known and required variables.

What it cannot prove: value types, provider-side validation, fields newer than 6.50 (keep
`google ~> 6.50`, or allowlist a newer field in ALLOWED_UNKNOWN with the reason), and the
difference between a block and a plugin-framework nested attribute (the schema of 6.50's
SDKv2 resources has only blocks).

    python tests/deploy/tfschema.py build .deploy-tools/cdktf-provider-google-16.12.1.tgz OUT.json
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SCHEMA_FORMAT = 1
JSII_MEMBER = "package/.jsii"

# Fields the schema of 6.50 cannot confirm but the provider we pin accepts, each with why.
# Keys: (resource type, dotted block path, name). Empty on purpose: nothing needs it today.
ALLOWED_UNKNOWN: dict[tuple[str, str, str], str] = {}

# Terraform's own resource types (no provider): nothing to check them against.
CORE_RESOURCE_TYPES = frozenset({"terraform_data"})
# The google-beta provider shares the google provider's resource schemas for every type
# this repository uses; its provider block takes the same arguments.
GOOGLE_PROVIDERS = ("google", "google-beta")

META_ARGUMENTS = frozenset({"count", "for_each", "depends_on", "provider"})
META_BLOCKS = frozenset({"lifecycle", "provisioner", "connection"})
DYNAMIC_KEYS = frozenset({"for_each", "iterator", "labels", "content"})


def is_meta(key: object) -> bool:
    """python-hcl2's own keys: __is_block__, __comments__, __inline_comments__, line numbers."""
    return isinstance(key, str) and key.startswith("__") and key.endswith("__")


_ANCHOR = re.compile(r"#([A-Za-z0-9_]+) [A-Za-z0-9]+#\1\}")
_TYPE_LINK = re.compile(r"hashicorp/google/([0-9.]+)/docs/(resources|data-sources)/([a-z0-9_]+)")
_PROVIDER_LINK = re.compile(r"hashicorp/google/([0-9.]+)/docs")


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


# --------------------------------------------------------------------------- schema build


def read_jsii(tgz: Path) -> dict:
    """The jsii assembly from the npm tarball, read in place (it is the tarball's third member)."""
    with tarfile.open(tgz, "r:gz") as tar:
        for member in tar:
            if member.name == JSII_MEMBER:
                fh = tar.extractfile(member)
                if fh is None:
                    break
                return json.load(fh)
    raise FileNotFoundError(f"{tgz} has no {JSII_MEMBER}")


def _tf_name(prop: dict) -> str:
    """A property's terraform name: its doc anchor, else its name in snake case."""
    docs = prop.get("docs", {})
    m = _ANCHOR.search(docs.get("summary", "")) or _ANCHOR.search(docs.get("remarks", ""))
    return m.group(1) if m else _snake(prop["name"])


def _config_fqn(cls: dict) -> str:
    """The datatype of a class's `config` initializer parameter."""
    for param in cls.get("initializer", {}).get("parameters", []):
        if param["name"] == "config":
            return param["type"]["fqn"]
    raise KeyError(f"{cls['fqn']} has no config parameter")


class _Structs:
    """The assembly's datatype interfaces condensed as they are walked: ``structs`` maps a
    struct id (the fqn without its package) to its attrs {name: required} and blocks
    {name: [struct id, required, is_list]}."""

    def __init__(self, types: dict[str, dict]) -> None:
        self.types = types
        self.structs: dict[str, dict] = {}

    def is_struct(self, fqn: str) -> bool:
        t = self.types.get(fqn)
        return bool(t and t.get("kind") == "interface" and t.get("datatype"))

    def struct_of(self, typ: dict) -> tuple[str, bool] | None:
        """(fqn, is_list) of the datatype a property's type holds, None for a plain value."""
        if "fqn" in typ:
            return (typ["fqn"], False) if self.is_struct(typ["fqn"]) else None
        if "collection" in typ:
            inner = self.struct_of(typ["collection"].get("elementtype", {}))
            return (inner[0], True) if inner else None
        if "union" in typ:
            for option in typ["union"]["types"]:
                found = self.struct_of(option)
                if found:
                    return found
        return None

    def properties(self, fqn: str) -> Iterator[dict]:
        """A datatype's properties, its parents' included."""
        t = self.types[fqn]
        yield from t.get("properties", [])
        for parent in t.get("interfaces", []):
            if self.is_struct(parent):
                yield from self.properties(parent)

    def walk(self, fqn: str) -> str:
        """The struct id of ``fqn``, condensing it (and what it nests) the first time."""
        key = fqn.split(".", 1)[1]
        if key in self.structs:
            return key
        entry: dict = {"attrs": {}, "blocks": {}}
        self.structs[key] = entry  # before recursing: a recursive schema ends here
        for prop in self.properties(fqn):
            name = _tf_name(prop)
            required = not prop.get("optional", False)
            nested = self.struct_of(prop["type"])
            if nested:
                entry["blocks"][name] = [self.walk(nested[0]), required, nested[1]]
            else:
                entry["attrs"][name] = required
        return key

    def resource(self, cls: dict) -> dict:
        """A resource or data source class: its configuration's struct id, and the attributes
        a reference may read (the class's own non-static properties without `Input`)."""
        cfg = _config_fqn(cls)
        struct = self.walk(cfg)
        snake_of = {p["name"]: _tf_name(p) for p in self.properties(cfg)}
        computed = sorted(
            {
                snake_of.get(p["name"], _snake(p["name"]))
                for p in cls.get("properties", [])
                if not p.get("static") and not p["name"].endswith("Input")
            }
        )
        return {"struct": struct, "computed": computed}


def build_schema(assembly: dict) -> dict:
    types: dict[str, dict] = assembly["types"]
    walker = _Structs(types)
    resources: dict[str, dict] = {}
    data_sources: dict[str, dict] = {}
    provider = None
    version = None
    for cls in types.values():
        if cls.get("kind") != "class":
            continue
        base = cls.get("base")
        summary = cls.get("docs", {}).get("summary", "")
        if base == "cdktf.TerraformProvider":
            provider = walker.walk(_config_fqn(cls))
            m = _PROVIDER_LINK.search(summary)
            version = m.group(1) if m else None
            continue
        if base not in ("cdktf.TerraformResource", "cdktf.TerraformDataSource"):
            continue
        m = _TYPE_LINK.search(summary)
        if not m:
            continue
        entry = walker.resource(cls)
        target = resources if m.group(2) == "resources" else data_sources
        target[f"google_{m.group(3)}"] = entry
    if provider is None or not resources:
        raise ValueError("not a google provider assembly: no provider class or no resources")
    return {
        "format": SCHEMA_FORMAT,
        "package": f"{assembly['name']}@{assembly['version']}",
        "provider_version": version,
        "provider": provider,
        "resources": resources,
        "data_sources": data_sources,
        "structs": walker.structs,
    }


def load_schema(tgz: Path, cache: Path) -> dict:
    """The condensed schema: from the cache when it was built from this tarball by this code."""
    code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    stamp = f"{tgz.name}:{tgz.stat().st_size}:{SCHEMA_FORMAT}:{code}"
    if cache.exists():
        schema = json.loads(cache.read_text())
        if schema.get("stamp") == stamp:
            return schema
    schema = build_schema(read_jsii(tgz))
    schema["stamp"] = stamp
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps(schema, separators=(",", ":"), sort_keys=True))
    tmp.replace(cache)
    return schema


# --------------------------------------------------------------------------- HCL helpers


@dataclass(frozen=True)
class Finding:
    path: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.where}: {self.message}"


def unquote(value: object) -> object:
    """python-hcl2 keeps a string literal's quotes ('"x"'); expressions are '${...}'."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def is_block_list(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) and v.get("__is_block__") for v in value)


def labelled(doc: dict, kind: str) -> Iterator[tuple[str, str, dict]]:
    """(type, name, body) of every `kind "type" "name" {}` block (resource, data)."""
    for entry in doc.get(kind, []):
        for qtype, named in entry.items():
            if is_meta(qtype):
                continue
            for qname, body in named.items():
                if not is_meta(qname):
                    yield str(unquote(qtype)), str(unquote(qname)), body


def single_labelled(doc: dict, kind: str) -> Iterator[tuple[str, dict]]:
    """(name, body) of every `kind "name" {}` block (variable, output, module, provider)."""
    for entry in doc.get(kind, []):
        for qname, body in entry.items():
            if not is_meta(qname):
                yield str(unquote(qname)), body


def strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            if not is_meta(k):
                yield str(k)
                yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


# --------------------------------------------------------------------------- schema check


def _allowed(rtype: str, bpath: str, name: str) -> bool:
    return (rtype, bpath, name) in ALLOWED_UNKNOWN


def _sub(bpath: str, name: str) -> str:
    return f"{bpath}.{name}" if bpath else name


def _check_dynamic(
    value: list[dict], blocks: dict, schema: dict, present: set[str], *, path: str, where: str, rtype: str, bpath: str
) -> Iterator[Finding]:
    """`dynamic "name" {}` blocks: only for_each/iterator/labels/content, a known block, each
    content checked as that block."""
    for dyn in value:
        for qname, dyn_body in dyn.items():
            if is_meta(qname):
                continue
            name = str(unquote(qname))
            present.add(name)
            for extra in {k for k in dyn_body if not is_meta(k)} - DYNAMIC_KEYS:
                yield Finding(path, f"{where}.dynamic.{name}", f"unknown argument {extra!r} in a dynamic block")
            if name not in blocks:
                if not _allowed(rtype, bpath, name):
                    yield Finding(path, where, f"unknown block {name!r} (dynamic)")
                continue
            for content in dyn_body.get("content", []):
                yield from _check_body(
                    content,
                    blocks[name][0],
                    schema,
                    path=path,
                    where=f"{where}.{name}",
                    rtype=rtype,
                    bpath=_sub(bpath, name),
                )


def _check_block_list(
    key: str, value: list[dict], struct: dict, schema: dict, *, path: str, where: str, rtype: str, bpath: str
) -> Iterator[Finding]:
    """A block given (once or more) as `key {}`: a known block, once unless it is a list."""
    attrs, blocks = struct["attrs"], struct["blocks"]
    if key in blocks:
        nested, _required, is_list = blocks[key]
        if not is_list and len(value) > 1:
            yield Finding(path, where, f"block {key!r} may be given once, found {len(value)}")
        for item in value:
            yield from _check_body(
                item, nested, schema, path=path, where=f"{where}.{key}", rtype=rtype, bpath=_sub(bpath, key)
            )
    elif key in attrs:
        yield Finding(path, where, f"{key!r} is an argument, written as a block")
    elif not _allowed(rtype, bpath, key):
        yield Finding(path, where, f"unknown block {key!r}")


def _check_argument(key: str, struct: dict, *, path: str, where: str, rtype: str, bpath: str) -> Iterator[Finding]:
    """An argument `key = ...`: a known argument, not a block."""
    if key in struct["attrs"]:
        return
    if key in struct["blocks"]:
        yield Finding(path, where, f"{key!r} is a block, written as an argument")
    elif not _allowed(rtype, bpath, key):
        yield Finding(path, where, f"unknown argument {key!r}")


def _check_required(struct: dict, present: set[str], *, path: str, where: str) -> Iterator[Finding]:
    """Every required argument and block given."""
    for name, required in struct["attrs"].items():
        if required and name not in present:
            yield Finding(path, where, f"missing required argument {name!r}")
    for name, (_nested, required, _is_list) in struct["blocks"].items():
        if required and name not in present:
            yield Finding(path, where, f"missing required block {name!r}")


def _check_body(
    body: dict, struct_id: str, schema: dict, *, path: str, where: str, rtype: str, bpath: str = ""
) -> Iterator[Finding]:
    """One resource body or nested block; `bpath` is the dotted block path ("" at the top)."""
    struct = schema["structs"][struct_id]
    present: set[str] = set()
    top = bpath == ""
    at = {"path": path, "where": where, "rtype": rtype, "bpath": bpath}
    for key, value in body.items():
        if is_meta(key):
            continue
        if key == "dynamic" and isinstance(value, list) and all(isinstance(v, dict) for v in value):
            yield from _check_dynamic(value, struct["blocks"], schema, present, **at)
            continue
        if is_block_list(value):
            if not (top and key in META_BLOCKS):
                present.add(key)
                yield from _check_block_list(key, value, struct, schema, **at)
            continue
        if top and key in META_ARGUMENTS:
            continue
        present.add(key)
        yield from _check_argument(key, struct, **at)
    yield from _check_required(struct, present, path=path, where=where)


_REF = re.compile(r"(?<![\w.])(data\.)?(google_[a-z0-9_]+)\.([a-zA-Z0-9_-]+)(?:\[[^\]]*\])?\.([a-z0-9_]+)")


def _check_declarations(path: str, doc: dict, schema: dict, declared: dict[tuple[str, str, str], str]) -> list[Finding]:
    """A file's google resources, data sources and provider blocks, each against the schema;
    each resource and data source found is added to ``declared`` (its module's)."""
    findings: list[Finding] = []
    for kind, table in (("resource", "resources"), ("data", "data_sources")):
        for rtype, name, body in labelled(doc, kind):
            where = f"{'data.' if kind == 'data' else ''}{rtype}.{name}"
            if rtype in CORE_RESOURCE_TYPES and kind == "resource":
                continue
            entry = schema[table].get(rtype)
            if entry is None:
                kind_name = "data source" if kind == "data" else "resource type"
                findings.append(Finding(path, where, f"unknown {kind_name} {rtype!r}"))
                continue
            declared[(kind, rtype, name)] = where
            findings += _check_body(body, entry["struct"], schema, path=path, where=where, rtype=rtype)
    for name, body in single_labelled(doc, "provider"):
        if name in GOOGLE_PROVIDERS:
            body = {k: v for k, v in body.items() if k != "alias"}
            findings += _check_body(
                body, schema["provider"], schema, path=path, where=f"provider.{name}", rtype="provider", bpath="-"
            )
    return findings


def _check_references(path: str, doc: dict, schema: dict, declared: dict[tuple[str, str, str], str]) -> list[Finding]:
    """A file's references to google resources' attributes: declared in its module, and an
    attribute the resource has."""
    findings: list[Finding] = []
    for text in strings(doc):
        for m in _REF.finditer(text):
            data, rtype, name, attr = m.groups()
            kind = "data" if data else "resource"
            if (kind, rtype, name) not in declared:
                findings.append(Finding(path, m.group(0), f"reference to {rtype}.{name}, not declared here"))
                continue
            entry = schema["data_sources" if data else "resources"][rtype]
            struct = schema["structs"][entry["struct"]]
            known = set(entry["computed"]) | set(struct["attrs"]) | set(struct["blocks"]) | {"id"}
            if attr not in known:
                findings.append(Finding(path, m.group(0), f"{rtype} has no attribute {attr!r}"))
    return findings


def check_schema(docs: dict[str, dict], schema: dict) -> list[Finding]:
    """Every google resource, data source and provider block in `docs` ({path: parsed HCL})."""
    findings: list[Finding] = []
    by_dir: dict[str, dict[tuple[str, str, str], str]] = {}
    for path, doc in docs.items():
        if "__error__" in doc:
            findings.append(Finding(path, "file", f"does not parse: {doc['__error__']}"))
            continue
        declared = by_dir.setdefault(str(Path(path).parent), {})
        findings += _check_declarations(path, doc, schema, declared)
    # references to google resources' attributes, within the module that declares them
    for path, doc in docs.items():
        if "__error__" in doc:
            continue
        findings += _check_references(path, doc, schema, by_dir.get(str(Path(path).parent), {}))
    return sorted(set(findings), key=str)


# --------------------------------------------------------------------------- module wiring

MODULE_META = frozenset({"source", "version", "providers", "count", "for_each", "depends_on"})
_VAR = re.compile(r"(?<![\w.])var\.([A-Za-z0-9_-]+)")
_LOCAL = re.compile(r"(?<![\w.])local\.([A-Za-z0-9_-]+)")
_MODULE = re.compile(r"(?<![\w.])module\.([A-Za-z0-9_-]+)(?:\[[^\]]*\])?(?:\.([A-Za-z0-9_-]+))?")


@dataclass
class ModuleDir:
    variables: dict[str, dict]
    outputs: set[str]
    locals_: set[str]
    calls: dict[str, dict]
    files: dict[str, dict]


def module_dirs(docs: dict[str, dict]) -> dict[Path, ModuleDir]:
    dirs: dict[Path, ModuleDir] = {}
    for path, doc in docs.items():
        if "__error__" in doc:
            continue
        d = dirs.setdefault(Path(path).parent.resolve(), ModuleDir({}, set(), set(), {}, {}))
        d.files[path] = doc
        d.variables.update(dict(single_labelled(doc, "variable")))
        d.outputs.update(name for name, _ in single_labelled(doc, "output"))
        d.calls.update(dict(single_labelled(doc, "module")))
        for block in doc.get("locals", []):
            d.locals_.update(k for k in block if not is_meta(k))
    return dirs


def _unused_variables(mod: ModuleDir) -> list[Finding]:
    """The module's variables that nothing outside the variable blocks reads."""
    findings: list[Finding] = []
    used = " ".join(
        text for doc in mod.files.values() for text in strings({k: v for k, v in doc.items() if k != "variable"})
    )
    for name in sorted(mod.variables):
        if not re.search(rf"(?<![\w.])var\.{re.escape(name)}(?![\w-])", used):
            path = next(p for p, d in mod.files.items() if name in dict(single_labelled(d, "variable")))
            findings.append(Finding(path, f"variable.{name}", "declared but never used"))
    return findings


def _unresolved_references(
    path: str, doc: dict, here: Path, mod: ModuleDir, dirs: dict[Path, ModuleDir]
) -> list[Finding]:
    """A file's `var.`, `local.` and `module.X.Y` references that its module does not declare."""
    findings: list[Finding] = []
    for text in strings({k: v for k, v in doc.items() if k != "variable"}):
        for m in _VAR.finditer(text):
            if m.group(1) not in mod.variables:
                findings.append(Finding(path, m.group(0), "undeclared variable"))
        for m in _LOCAL.finditer(text):
            if m.group(1) not in mod.locals_:
                findings.append(Finding(path, m.group(0), "undeclared local value"))
        for m in _MODULE.finditer(text):
            call, output = m.groups()
            if call not in mod.calls:
                findings.append(Finding(path, m.group(0), "undeclared module call"))
                continue
            target = dirs.get((here / str(unquote(mod.calls[call].get("source", "")))).resolve())
            if output and target is not None and output not in target.outputs:
                findings.append(Finding(path, m.group(0), f"module {call!r} has no output {output!r}"))
    return findings


def _validation_references(path: str, doc: dict) -> list[Finding]:
    """A variable's validation may only name the variable itself (Terraform < 1.9)."""
    return [
        Finding(path, f"variable.{name}", f"validation refers to {m.group(0)}")
        for name, body in single_labelled(doc, "variable")
        for text in strings(body.get("validation", []))
        for m in _VAR.finditer(text)
        if m.group(1) != name
    ]


def _module_calls(path: str, doc: dict, here: Path, dirs: dict[Path, ModuleDir]) -> list[Finding]:
    """A file's module calls: a local module with .tf files, passed only variables it has and
    every one it requires."""
    findings: list[Finding] = []
    for call, body in single_labelled(doc, "module"):
        source = str(unquote(body.get("source", "")))
        if not source.startswith("."):
            findings.append(Finding(path, f"module.{call}", f"source {source!r} is not a local module"))
            continue
        target = dirs.get((here / source).resolve())
        if target is None:
            findings.append(Finding(path, f"module.{call}", f"source {source!r} has no .tf files"))
            continue
        passed = {k for k in body if not is_meta(k) and k not in MODULE_META}
        for name in sorted(passed - set(target.variables)):
            findings.append(Finding(path, f"module.{call}", f"the module has no variable {name!r}"))
        for name, var in target.variables.items():
            if "default" not in var and name not in passed:
                findings.append(Finding(path, f"module.{call}", f"required variable {name!r} not passed"))
    return findings


def check_wiring(docs: dict[str, dict]) -> list[Finding]:
    """What `terraform validate` would say about the modules' own references and calls, and
    (as tflint would) a variable nobody reads."""
    findings: list[Finding] = []
    dirs = module_dirs(docs)
    for here, mod in dirs.items():
        findings += _unused_variables(mod)
        for path, doc in mod.files.items():
            findings += _unresolved_references(path, doc, here, mod, dirs)
            findings += _validation_references(path, doc)
            findings += _module_calls(path, doc, here, dirs)
    return sorted(set(findings), key=str)


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "build":
        schema = load_schema(Path(argv[1]), Path(argv[2]))
        print(
            f"{schema['package']}: google provider {schema['provider_version']}, "
            f"{len(schema['resources'])} resources, {len(schema['data_sources'])} data sources -> {argv[2]}"
        )
        return 0
    print("usage: tfschema.py build PROVIDER.tgz OUT.json", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
