#!/usr/bin/env python3
"""Generate crates/proto/src/generated.rs: protobuf field tables for the built-in Kubernetes kinds.

Inputs (read-only, from the local cargo registry):
  * k8s-pb 0.9      -- prost-generated messages: field tags, wire types, optional/repeated, maps,
                       nested message paths, and `impl Resource` (apiVersion, kind) pairs.
  * k8s-openapi 0.29 (src/v1_35) -- the exact JSON field names of each type (from its serde
                       Deserialize code), which fields are required, and more (apiVersion, kind) pairs.

Usage (from the workspace root, after `cargo fetch` so both crates are in ~/.cargo/registry/src):
    python3 crates/proto/gen/gen_tables.py [--registry DIR] [--out FILE]
The output is deterministic and excluded from rustfmt; check it in.

The script fails loudly (exit 1) when a proto field of a type known to k8s-openapi has no JSON name,
or when a message used by a kind cannot be described.
"""

import argparse
import glob
import os
import re
import sys

PB_CRATE = "k8s-pb-0.9.0"
OPENAPI_CRATE = "k8s-openapi-0.29.0"
OPENAPI_VERSION_DIR = "v1_35"

META = "apimachinery.pkg.apis.meta.v1"

# apimachinery types whose JSON form is not an object of their proto fields.
SPECIAL_SHAPES = {
    f"{META}.Time": "Time",
    f"{META}.MicroTime": "MicroTime",
    f"{META}.Duration": "Duration",
    f"{META}.FieldsV1": "RawJson",
    "apimachinery.pkg.api.resource.Quantity": "Quantity",
    "apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
    "apimachinery.pkg.runtime.RawExtension": "RawJson",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.Json": "RawJson",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaPropsOrArray": "SchemaOrArray",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaPropsOrBool": "SchemaOrBool",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaPropsOrStringArray": "SchemaOrStringArray",
}

# Kinds every API group accepts as request bodies (registered "unversioned" by apimachinery).
UNVERSIONED_KINDS = {"DeleteOptions": f"{META}.DeleteOptions"}

# Go pointer-to-string fields where an empty string is meaningful and must survive decoding.
# (Go's protobuf encoder writes non-pointer strings even when empty, and their JSON form omits
# them; pointer strings are only written when set.)
KEEP_EMPTY_STRING = {
    ("api.core.v1.PersistentVolumeClaimSpec", "storageClassName"),
}

SCALARS = {
    "string": "String",
    "bytes": "Bytes",
    "int32": "Int32",
    "int64": "Int64",
    "bool": "Bool",
    "double": "Double",
}

OPENAPI_PREFIXES = [
    ("io.k8s.apiextensions-apiserver.", "apiextensions_apiserver."),
    ("io.k8s.kube-aggregator.", "kube_aggregator."),
    ("io.k8s.", ""),
]


def die(msg):
    print(f"gen_tables.py: error: {msg}", file=sys.stderr)
    sys.exit(1)


def norm(name):
    """Normalise a Rust or JSON field name for matching (`volume_id` == `volumeID`)."""
    if name.startswith("r#"):
        name = name[2:]
    return re.sub(r"[^a-z0-9]", "", name.lower())


def strip_comments(text):
    return "\n".join(line for line in text.split("\n") if not line.strip().startswith("//"))


# ---------------------------------------------------------------------------------------------
# k8s-pb
# ---------------------------------------------------------------------------------------------

FIELD_RE = re.compile(
    r"#\[prost\((?P<attr>[^\]]*)\)\]\s*pub (?P<name>(?:r#)?\w+):\s*(?P<ty>.*?),\s*(?=#\[prost|$)",
    re.S,
)
STRUCT_RE = re.compile(r"pub struct (\w+) \{\n(.*?)\n\}", re.S)
EMPTY_STRUCT_RE = re.compile(r"pub struct (\w+) \{\}")
RESOURCE_RE = re.compile(
    r"impl crate::Resource for (\w+) \{(.*?)\n\}", re.S
)


def resolve_path(module, path):
    """Resolve a Rust type path used inside `module` (list of segments) to a dotted message name."""
    segs = [s for s in path.split("::") if s]
    if segs and segs[0] == "crate":
        return ".".join(segs[1:])
    base = list(module)
    while segs and segs[0] == "super":
        base.pop()
        segs.pop(0)
    return ".".join(base + segs)


def message_type_path(ty):
    """The message path inside Option<..>/Vec<..>/Box<..> wrappers."""
    ty = re.sub(r"\s+", "", ty)
    wrappers = ("::core::option::Option<", "::prost::alloc::vec::Vec<", "::prost::alloc::boxed::Box<")
    unwrapped = True
    while unwrapped:
        unwrapped = False
        ty = ty.rstrip(",")
        for wrapper in wrappers:
            if ty.startswith(wrapper) and ty.endswith(">"):
                ty = ty[len(wrapper) : -1]
                unwrapped = True
    return ty.rstrip(",")


def parse_pb(root):
    messages = {}  # dotted name -> list of field dicts
    resources = {}  # dotted name -> (apiVersion, kind)
    for path in sorted(glob.glob(os.path.join(root, "src", "**", "mod.rs"), recursive=True)):
        rel = os.path.relpath(os.path.dirname(path), os.path.join(root, "src"))
        if rel == ".":
            continue
        module = rel.split(os.sep)
        text = strip_comments(open(path, encoding="utf-8").read())
        for m in EMPTY_STRUCT_RE.finditer(text):
            messages[".".join(module + [m.group(1)])] = []
        for m in STRUCT_RE.finditer(text):
            name, body = m.group(1), m.group(2)
            fields = []
            for f in FIELD_RE.finditer(body.strip()):
                fields.append(parse_pb_field(module, f.group("attr"), f.group("name"), f.group("ty")))
            messages[".".join(module + [name])] = fields
        for m in RESOURCE_RE.finditer(text):
            api_version = re.search(r'API_VERSION: &\'static str = "([^"]*)"', m.group(2)).group(1)
            kind = re.search(r'KIND: &\'static str = "([^"]*)"', m.group(2)).group(1)
            resources[".".join(module + [m.group(1)])] = (api_version, kind)
    return messages, resources


def parse_pb_field(module, attr, name, ty):
    tag = int(re.search(r'tag = "(\d+)"', attr).group(1))
    field = {"tag": tag, "rust": name, "repeated": "repeated" in attr}
    map_m = re.match(r'btree_map = "(\w+), (\w+)"', attr)
    if map_m:
        key, value = map_m.group(1), map_m.group(2)
        if key != "string":
            die(f"map key type {key} in {'.'.join(module)}.{name}: only string keys are supported")
        field["kind"] = ("map", key, value)
        if value == "message":
            inner = re.sub(r"\s+", "", ty)
            vm = re.search(r"BTreeMap<::prost::alloc::string::String,(.*)>$", inner)
            if not vm:
                die(f"cannot parse map value type {ty!r}")
            field["kind"] = ("map", key, ("message", resolve_path(module, vm.group(1).rstrip(","))))
        return field
    wire = attr.split(",")[0].strip()
    wire = wire.split("=")[0].strip()
    if wire == "message":
        field["kind"] = ("message", resolve_path(module, message_type_path(ty)))
    elif wire in SCALARS:
        field["kind"] = (wire,)
    else:
        die(f"unsupported prost field kind {attr!r} in {'.'.join(module)}")
    return field


# ---------------------------------------------------------------------------------------------
# k8s-openapi
# ---------------------------------------------------------------------------------------------

JSON_NAME_RE = re.compile(r'"([^"]+)" => Field::Key_(\w+),')
RUST_FIELD_RE = re.compile(r"^    pub (\w+): (.*),$", re.M)


def openapi_to_pb_name(definition):
    for prefix, replacement in OPENAPI_PREFIXES:
        if definition.startswith(prefix):
            return replacement + definition[len(prefix) :]
    return None


def parse_openapi(root):
    types = {}  # lower-cased pb-style dotted name -> info
    for path in sorted(glob.glob(os.path.join(root, "src", OPENAPI_VERSION_DIR, "**", "*.rs"), recursive=True)):
        text = open(path, encoding="utf-8").read()
        m = re.match(r"// Generated from definition (\S+)", text)
        if not m:
            continue
        pb_name = openapi_to_pb_name(m.group(1))
        if pb_name is None:
            continue
        json_names = {rust: json for json, rust in JSON_NAME_RE.findall(text)}
        required = set()
        struct_m = re.search(r"pub struct \w+ \{(.*?)\n\}", text, re.S)
        if struct_m:
            for rust, ty in RUST_FIELD_RE.findall(struct_m.group(1)):
                if not ty.startswith("Option<"):
                    required.add(rust)
        info = {"definition": m.group(1), "json": json_names, "required": required}
        res = re.search(r"impl crate::Resource for \w+ \{(.*?)\n\}", text, re.S)
        if res:
            api_version = re.search(r'API_VERSION: &\'static str = "([^"]*)"', res.group(1)).group(1)
            kind = re.search(r'KIND: &\'static str = "([^"]*)"', res.group(1)).group(1)
            info["resource"] = (api_version, kind)
        types[pb_name.lower()] = info
    return types


# ---------------------------------------------------------------------------------------------
# Combination
# ---------------------------------------------------------------------------------------------


def is_list_message(fields):
    return sorted(f["rust"] for f in fields) == ["items", "metadata"]


def is_string_list_wrapper(name, fields):
    """Go named `[]string` types (ExtraValue, Verbs): a message in proto, a plain array in JSON."""
    short = name.rsplit(".", 1)[1]
    return (
        short in ("ExtraValue", "Verbs")
        and len(fields) == 1
        and fields[0]["kind"] == ("string",)
        and fields[0]["repeated"]
        and fields[0]["tag"] == 1
    )


def describe_messages(pb_messages, openapi):
    """Returns {message: shape} where shape is a special shape name or a list of field rows."""
    described = {}
    parent_json = {}
    parent_by_norm = {}
    problems = []
    for name, fields in pb_messages.items():
        if name in SPECIAL_SHAPES:
            described[name] = SPECIAL_SHAPES[name]
            continue
        if is_string_list_wrapper(name, fields):
            described[name] = "StringList"
            continue
        info = openapi.get(name.lower())
        if info is None:
            if is_list_message(fields):
                # k8s-openapi models lists generically (List<T>); their JSON names are fixed.
                described[name] = [dict(f, json=f["rust"], required=False, inline=False) for f in fields]
            continue
        by_norm = {}
        for rust, json in info["json"].items():
            by_norm[norm(json)] = (json, rust in info["required"])
        rows = []
        for f in fields:
            hit = by_norm.get(norm(f["rust"]))
            if hit is None:
                if f["kind"][0] == "message" and not f["repeated"]:
                    # Probably an embedded Go struct (`json:",inline"`): checked below.
                    rows.append(dict(f, json="", required=False, inline=True))
                    continue
                problems.append(f"{name}.{f['rust']} (tag {f['tag']}) has no JSON name in {info['definition']}")
                continue
            rows.append(dict(f, json=hit[0], required=hit[1], inline=False))
        described[name] = rows
        parent_json[name] = set(info["json"].values())
        parent_by_norm[name] = by_norm

    # Go-only structs embedded inline (ProbeHandler, VolumeSource, ...) have no k8s-openapi type of
    # their own: their fields take the JSON names of the struct that embeds them.
    changed = True
    while changed:
        changed = False
        for name in list(described):
            shape = described[name]
            if not isinstance(shape, list):
                continue
            for row in shape:
                target = row["kind"][1] if row["inline"] else None
                if target is None or target in described or target not in pb_messages:
                    continue
                by_norm = parent_by_norm[name]
                if not all(norm(f["rust"]) in by_norm for f in pb_messages[target]):
                    continue
                described[target] = [
                    dict(f, json=by_norm[norm(f["rust"])][0], required=by_norm[norm(f["rust"])][1], inline=False)
                    for f in pb_messages[target]
                ]
                parent_json[target] = parent_json[name]
                parent_by_norm[target] = by_norm
                changed = True

    def flattened_names(message, depth=0):
        shape = described.get(message)
        if not isinstance(shape, list) or depth > 8:
            return None
        names = set()
        for row in shape:
            if row["inline"]:
                inner = flattened_names(row["kind"][1], depth + 1)
                if inner is None:
                    return None
                names |= inner
            else:
                names.add(row["json"])
        return names

    for name, shape in described.items():
        if not isinstance(shape, list):
            continue
        for row in shape:
            if not row["inline"]:
                continue
            inner = flattened_names(row["kind"][1])
            if inner is None or not inner <= parent_json[name]:
                problems.append(
                    f"{name}.{row['rust']} (tag {row['tag']}) has no JSON name and is not an inlined struct"
                )
    if problems:
        die("unmatched proto fields:\n  " + "\n  ".join(problems))
    return described


def referenced(kind):
    if kind[0] == "message":
        return [kind[1]]
    if kind[0] == "map" and isinstance(kind[2], tuple):
        return [kind[2][1]]
    return []


def closure(roots, described):
    """Messages reachable from roots; None if some reachable message cannot be described."""
    seen, stack, missing = set(), list(roots), []
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        shape = described.get(name)
        if shape is None:
            missing.append(name)
            continue
        if isinstance(shape, list):
            for f in shape:
                stack.extend(referenced(f["kind"]))
    return seen, missing


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def rust_kind(kind, index):
    if kind[0] == "message":
        return f"FieldKind::Message({index[kind[1]]})"
    if kind[0] == "map":
        if isinstance(kind[2], tuple):
            return f"FieldKind::Map(MapValue::Message({index[kind[2][1]]}))"
        return f"FieldKind::Map(MapValue::Scalar(ScalarKind::{SCALARS[kind[2]]}))"
    return f"FieldKind::Scalar(ScalarKind::{SCALARS[kind[0]]})"


def render(names, described, kinds):
    index = {n: i for i, n in enumerate(names)}
    out = []
    out.append("// @generated by crates/proto/gen/gen_tables.py from k8s-pb 0.9 and k8s-openapi 0.29 (v1_35).")
    out.append("// Do not edit by hand: rerun `python3 crates/proto/gen/gen_tables.py`.")
    out.append("")
    out.append("use crate::tables::{FieldDef, FieldKind, MapValue, MessageDef, ScalarKind, Shape};")
    out.append("")
    out.append("/// Every message reachable from a known kind, sorted by proto name.")
    out.append("pub(crate) static MESSAGES: &[MessageDef] = &[")
    for name in names:
        shape = described[name]
        out.append(f"    // {index[name]}")
        if isinstance(shape, str):
            if shape.startswith("Schema"):
                # The JSONSchemaProps alternatives carry the index of JSONSchemaProps itself.
                schema = name.rsplit(".", 1)[0] + ".JsonSchemaProps"
                shape = f"{shape}({index[schema]})"
            out.append(f'    MessageDef {{ name: "{name}", shape: Shape::{shape} }},')
            continue
        out.append(f'    MessageDef {{ name: "{name}", shape: Shape::Object(&[')
        for f in sorted(shape, key=lambda f: f["tag"]):
            keep_empty = (
                f["required"]
                or f["repeated"]
                or (name, f["json"]) in KEEP_EMPTY_STRING
            )
            out.append(
                f'        FieldDef {{ tag: {f["tag"]}, json: "{f["json"]}", kind: {rust_kind(f["kind"], index)}, '
                f'repeated: {str(f["repeated"]).lower()}, inline: {str(f["inline"]).lower()}, '
                f'omit_empty_string: {str(not keep_empty).lower()} }},'
            )
        out.append("    ]) },")
    out.append("];")
    out.append("")
    out.append("/// (apiVersion, kind) -> index into MESSAGES, sorted for binary search.")
    out.append("pub(crate) static KINDS: &[(&str, &str, usize)] = &[")
    for (api_version, kind), name in sorted(kinds.items()):
        out.append(f'    ("{api_version}", "{kind}", {index[name]}),')
    out.append("];")
    out.append("")
    out.append("/// Kinds accepted under any apiVersion (apimachinery registers them in every group).")
    out.append("pub(crate) static UNVERSIONED_KINDS: &[(&str, usize)] = &[")
    for kind, name in sorted(UNVERSIONED_KINDS.items()):
        out.append(f'    ("{kind}", {index[name]}),')
    out.append("];")
    out.append("")
    return "\n".join(out)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registry", default=None, help="cargo registry src dir holding the crates")
    parser.add_argument("--out", default=os.path.normpath(os.path.join(here, "..", "src", "generated.rs")))
    args = parser.parse_args()

    registry_dirs = [args.registry] if args.registry else glob.glob(os.path.expanduser("~/.cargo/registry/src/*"))
    pb_root = openapi_root = None
    for d in registry_dirs:
        if os.path.isdir(os.path.join(d, PB_CRATE)):
            pb_root = os.path.join(d, PB_CRATE)
        if os.path.isdir(os.path.join(d, OPENAPI_CRATE)):
            openapi_root = os.path.join(d, OPENAPI_CRATE)
    if not pb_root or not openapi_root:
        die(f"{PB_CRATE} and {OPENAPI_CRATE} must be in the cargo registry (run `cargo fetch` first)")

    pb_messages, pb_resources = parse_pb(pb_root)
    openapi = parse_openapi(openapi_root)
    described = describe_messages(pb_messages, openapi)

    candidates = dict()
    for name, gvk in pb_resources.items():
        candidates[gvk] = name
    lower_to_pb = {n.lower(): n for n in pb_messages}
    for lower, info in openapi.items():
        if "resource" in info and lower in lower_to_pb:
            candidates.setdefault(info["resource"], lower_to_pb[lower])

    kinds, used, skipped = {}, set(), []
    for gvk, name in sorted(candidates.items()):
        reach, missing = closure([name], described)
        if missing:
            # Kinds of API versions k8s-openapi v1_35 does not serve (old betas etc.).
            skipped.append(f"{gvk[0]}/{gvk[1]} (needs {', '.join(sorted(missing))})")
            continue
        kinds[gvk] = name
        used |= reach
    for name in UNVERSIONED_KINDS.values():
        reach, missing = closure([name], described)
        if missing:
            die(f"unversioned kind {name} cannot be described: {missing}")
        used |= reach
    for required in ["v1/Secret", "apps/v1/Deployment", "v1/Pod", "policy/v1/Eviction",
                     "authentication.k8s.io/v1/TokenRequest",
                     "authorization.k8s.io/v1/SelfSubjectAccessReview",
                     "apiextensions.k8s.io/v1/CustomResourceDefinition"]:
        api_version, kind = required.rsplit("/", 1)
        if (api_version, kind) not in kinds:
            die(f"required kind {required} missing from the tables; skipped: " + "\n".join(skipped))

    # Every special shape is emitted so the decoder's shape handling stays exercised and in sync.
    for name in SPECIAL_SHAPES:
        reach, missing = closure([name], described)
        if missing:
            die(f"special type {name} cannot be described: {missing}")
        used |= reach
    for message, json in sorted(KEEP_EMPTY_STRING):
        shape = described.get(message)
        if message not in used or not isinstance(shape, list) or json not in {f["json"] for f in shape}:
            die(f"KEEP_EMPTY_STRING entry {message}.{json} no longer exists")
    names = sorted(used)
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write(render(names, described, kinds))
    print(f"wrote {args.out}: {len(names)} messages, {len(kinds)} kinds; skipped {len(skipped)} kinds")
    for s in skipped:
        print(f"  skipped {s}")


if __name__ == "__main__":
    main()
