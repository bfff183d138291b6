#!/usr/bin/env python3
"""Derive wire-compatible proto3 files for the MergeTB portal v1 API.

The MergeTB API is published on PyPI as `mergetbapi` (MIT, USC Information
Sciences Institute): betterproto-generated Python, without the .proto sources.
Every betterproto message is a dataclass whose fields carry their proto field
number and type, enums are `betterproto.Enum` classes, and every `*Stub` class
calls `self._unary_unary("/portal.v1.Workspace/CreateProject", ...)` (or one of
the streaming variants).  This script introspects that package and writes
proto3 files that are identical on the wire: same packages, services, method
names, streaming kinds, field numbers and field types.

What cannot be recovered, and why it does not matter on the wire:
  * File layout: Merge spread each package over many files; we write one file
    per package (`portal/v1/portal.proto`, `xir/xir.proto`, ...).
  * Nesting: betterproto flattens `TaskStatus.StatusType` into
    `TaskStatusStatusType`.  Proto3 enum values share the scope of their enum,
    so an enum whose values collide with another symbol of the package is
    re-nested into the message whose name is its prefix (longest match).
    Everything else stays top-level under its flattened name.
  * Names: betterproto snake-cases field names, strips enum-name prefixes from
    enum values and appends `_` to Python keywords.  Field and value names are
    not on the binary wire; we keep betterproto's spelling.
  * Options (google.api.http, openapiv2, validators, deprecated) are dropped:
    they do not change the encoding.  Deprecated fields get a comment.

Output is deterministic: top-level definitions are sorted by name; fields,
enum values and methods keep Merge's declaration order (which is what the
Python package preserves).  Running the script twice yields identical files.

Usage (in a venv with mergetbapi==1.6.0):
    python3 scripts/derive-protos.py [--out portal/api/proto] [--check]
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import dataclasses
import datetime
import importlib
import inspect
import re
import sys
import typing
from importlib import metadata
from pathlib import Path

import betterproto

ROOT = "mergetbapi"
EXPECTED_VERSION = "1.6.0"
# Packages we start from; everything they reference is pulled in as well.
ENTRY_PACKAGES = ["portal.v1"]
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "portal" / "api" / "proto"

# betterproto maps these google.protobuf types to Python builtins.
BUILTIN_WKT = {
    datetime.datetime: ("google.protobuf.Timestamp", "google/protobuf/timestamp.proto"),
    datetime.timedelta: ("google.protobuf.Duration", "google/protobuf/duration.proto"),
}
# Wrapper types, keyed by betterproto's `wraps` proto type.
WRAPPERS = {
    "bool": "BoolValue",
    "int32": "Int32Value",
    "int64": "Int64Value",
    "uint32": "UInt32Value",
    "uint64": "UInt64Value",
    "float": "FloatValue",
    "double": "DoubleValue",
    "string": "StringValue",
    "bytes": "BytesValue",
}
WKT_FILES = {
    "Any": "any.proto",
    "Duration": "duration.proto",
    "Empty": "empty.proto",
    "FieldMask": "field_mask.proto",
    "Struct": "struct.proto",
    "Value": "struct.proto",
    "ListValue": "struct.proto",
    "NullValue": "struct.proto",
    "Timestamp": "timestamp.proto",
    **{w: "wrappers.proto" for w in WRAPPERS.values()},
}
SCALARS = {
    "bool", "bytes", "string", "float", "double",
    "int32", "int64", "uint32", "uint64", "sint32", "sint64",
    "fixed32", "fixed64", "sfixed32", "sfixed64",
}
KINDS = {
    "_unary_unary": (False, False),
    "_unary_stream": (False, True),
    "_stream_unary": (True, False),
    "_stream_stream": (True, True),
}


class DeriveError(Exception):
    """The package contains something this script cannot express."""


# === Model ===================================================================


@dataclasses.dataclass
class Field:
    name: str
    number: int
    type: "str | Ref | MapType"  # a scalar or well-known type name is plain text
    label: str  # "", "repeated " or "optional "
    group: str | None
    doc: str | None
    deprecated: bool


@dataclasses.dataclass
class Enum:
    py: type
    name: str  # flattened (Python) name
    values: list[tuple[str, int, str | None]]
    doc: str | None
    parent: str | None = None  # message it is nested in, if any

    @property
    def local(self) -> str:
        return self.name[len(self.parent):] if self.parent else self.name


@dataclasses.dataclass
class Message:
    py: type
    name: str
    fields: list[Field]
    doc: str | None
    nested: list[Enum] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Method:
    name: str
    input: "Ref | str"
    output: "Ref | str"
    client_streaming: bool
    server_streaming: bool


@dataclasses.dataclass
class Service:
    name: str
    methods: list[Method]


@dataclasses.dataclass
class Package:
    name: str
    module: typing.Any
    messages: dict[str, Message] = dataclasses.field(default_factory=dict)
    enums: dict[str, Enum] = dataclasses.field(default_factory=dict)
    services: dict[str, Service] = dataclasses.field(default_factory=dict)
    imports: set[str] = dataclasses.field(default_factory=set)

    @property
    def path(self) -> str:
        parts = self.name.split(".")
        stem = next(p for p in reversed(parts) if not re.fullmatch(r"v\d+", p))
        return "/".join(parts) + f"/{stem}.proto"


# === Introspection ===========================================================


def package_of(module_name: str) -> str:
    if not module_name.startswith(ROOT + "."):
        raise DeriveError(f"type from outside {ROOT}: {module_name}")
    return module_name[len(ROOT) + 1:]


def own_classes(module, base) -> list[tuple[str, type]]:
    return [
        (n, c)
        for n, c in vars(module).items()
        if inspect.isclass(c) and issubclass(c, base) and c.__module__ == module.__name__
    ]


def source_docs(module) -> dict[str, tuple[str | None, dict[str, str]]]:
    """Class docstring plus the docstring after each field or enum value.

    betterproto puts proto comments into string literals right after the
    assignment they describe; only `ast` can see those.
    """
    tree = ast.parse(Path(inspect.getsourcefile(module)).read_text())
    docs = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        members: dict[str, str] = {}
        last = None
        for item in node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                last = item.target.id
            elif isinstance(item, ast.Assign) and isinstance(item.targets[0], ast.Name):
                last = item.targets[0].id
            elif (
                isinstance(item, ast.Expr)
                and isinstance(item.value, ast.Constant)
                and isinstance(item.value.value, str)
                and last is not None
            ):
                members[last] = item.value.value
                last = None
            else:
                last = None
        docs[node.name] = (ast.get_docstring(node, clean=False), members)
    return docs


def deprecated_fields(cls) -> set[str]:
    try:
        src = inspect.getsource(cls)
    except (OSError, TypeError):
        return set()
    return set(re.findall(rf'"{cls.__name__}\.(\w+) is deprecated"', src))


class Recorded(Exception):
    def __init__(self, route, kind, request_type, response_type):
        super().__init__(route)
        self.route, self.kind = route, kind
        self.request_type, self.response_type = request_type, response_type


def recording_stub(stub_cls):
    """A stub whose transport records the call instead of sending it."""

    def recorder(kind):
        if kind in ("_unary_unary", "_unary_stream"):
            def call(self, route, request, response_type, **_kw):
                raise Recorded(route, kind, None, response_type)
        else:
            def call(self, route, request_iterator, request_type, response_type, **_kw):
                raise Recorded(route, kind, request_type, response_type)
        if kind in ("_unary_unary", "_stream_unary"):
            async def wrapped(self, *a, **kw):
                call(self, *a, **kw)
            return wrapped

        async def gen(self, *a, **kw):
            call(self, *a, **kw)
            yield None  # pragma: no cover - makes this an async generator
        return gen

    ns = {k: recorder(k) for k in KINDS}
    return type("Recording" + stub_cls.__name__, (stub_cls,), ns)(None)


def request_param_type(func, module):
    params = list(inspect.signature(func).parameters.values())
    ann = params[1].annotation
    if isinstance(ann, str):
        ann = vars(module)[ann]
    return ann


async def record_method(stub, name, func, module) -> Recorded:
    try:
        result = getattr(stub, name)(None)
        if inspect.isasyncgen(result):
            async for _ in result:
                pass
        else:
            await result
    except Recorded as rec:
        if rec.request_type is None:
            rec.request_type = request_param_type(func, module)
        return rec
    raise DeriveError(f"{type(stub).__name__}.{name} made no call")


def stub_services(module) -> list[tuple[str, list[Recorded]]]:
    out = []
    for name, cls in own_classes(module, betterproto.ServiceStub):
        stub = recording_stub(cls)
        calls = []
        for mname, func in vars(cls).items():
            if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
                calls.append(asyncio.run(record_method(stub, mname, func, module)))
        out.append((name, calls))
    return out


def base_mapping(module) -> dict[str, tuple]:
    """Paths from the server-side `*Base` classes, used to cross-check stubs."""
    from betterproto.grpc.grpclib_server import ServiceBase

    paths = {}
    for _name, cls in own_classes(module, ServiceBase):
        for path, handler in cls().__mapping__().items():
            paths[path] = (handler.cardinality.name, handler.request_type, handler.reply_type)
    return paths


# === Derivation ==============================================================


class Deriver:
    def __init__(self):
        self.packages: dict[str, Package] = {}
        self.queue: list[str] = []

    def package(self, name: str) -> Package:
        if name not in self.packages:
            module = importlib.import_module(f"{ROOT}.{name}")
            self.packages[name] = Package(name, module)
            self.queue.append(name)
        return self.packages[name]

    def run(self, entries: list[str]) -> None:
        for e in entries:
            self.package(e)
        while self.queue:
            self.load(self.packages[self.queue.pop(0)])
        for pkg in self.packages.values():
            nest_colliding_enums(pkg)

    def load(self, pkg: Package) -> None:
        docs = source_docs(pkg.module)
        for name, cls in own_classes(pkg.module, betterproto.Enum):
            doc, member_docs = docs.get(name, (None, {}))
            values = [(v.name, int(v.value), member_docs.get(v.name)) for v in cls]
            if len(cls.__members__) != len(values):
                raise DeriveError(f"enum {name} has aliases; not supported")
            if values[0][1] != 0:
                raise DeriveError(f"enum {name}: first value must be 0 in proto3")
            pkg.enums[name] = Enum(cls, name, values, doc)
        for name, cls in own_classes(pkg.module, betterproto.Message):
            doc, member_docs = docs.get(name, (None, {}))
            dep = deprecated_fields(cls)
            fields = [
                self.field(pkg, cls, f, member_docs.get(f.name), f.name in dep)
                for f in dataclasses.fields(cls)
            ]
            pkg.messages[name] = Message(cls, name, fields, doc)
        known = {}
        for sname, calls in stub_services(pkg.module):
            methods = []
            for rec in calls:
                m = re.fullmatch(r"/([\w.]+)\.(\w+)/(\w+)", rec.route)
                if not m or m.group(1) != pkg.name:
                    raise DeriveError(f"{sname}: route {rec.route} outside package {pkg.name}")
                svc, meth = m.group(2), m.group(3)
                if svc not in pkg.services:
                    pkg.services[svc] = Service(svc, methods)
                elif pkg.services[svc].methods is not methods:
                    raise DeriveError(f"service {svc} spread over several stubs")
                cs, ss = KINDS[rec.kind]
                inp, outp = self.ref(pkg, rec.request_type), self.ref(pkg, rec.response_type)
                methods.append(Method(meth, inp, outp, cs, ss))
                known[rec.route] = (rec.kind, rec.request_type, rec.response_type)
        # The server-side view must agree with what the client stubs call.
        for path, (card, req, resp) in base_mapping(pkg.module).items():
            kind = "_" + card.lower()
            if known.get(path) != (kind, req, resp):
                raise DeriveError(f"stub/base mismatch for {path}: {known.get(path)} vs {(kind, req, resp)}")
        if len(known) != len(base_mapping(pkg.module)):
            raise DeriveError(f"{pkg.name}: stubs and bases list different methods")

    def field(self, pkg, cls, f, doc, deprecated) -> Field:
        md: betterproto.FieldMetadata = f.metadata["betterproto"]
        hint = cls._type_hint(f.name)
        repeated = typing.get_origin(hint) is list
        if md.proto_type == betterproto.TYPE_MAP:
            key, value = md.map_types
            if value in (betterproto.TYPE_MESSAGE, betterproto.TYPE_ENUM):
                value = self.ref(pkg, cls._betterproto.cls_by_field[f.name + ".value"])
            elif value not in SCALARS:
                raise DeriveError(f"{cls.__name__}.{f.name}: map value {value}")
            ftype, label = MapType(key, value), ""
        else:
            if md.wraps:
                ftype = self.wkt(pkg, WRAPPERS[md.wraps])
            elif md.proto_type in (betterproto.TYPE_MESSAGE, betterproto.TYPE_ENUM):
                ftype = self.ref(pkg, cls._betterproto.cls_by_field[f.name])
            elif md.proto_type in SCALARS:
                ftype = md.proto_type
            else:
                raise DeriveError(f"{cls.__name__}.{f.name}: proto type {md.proto_type}")
            label = "repeated " if repeated else "optional " if md.optional else ""
            if repeated and md.optional:
                raise DeriveError(f"{cls.__name__}.{f.name}: repeated and optional")
        if md.group and (repeated or md.optional or md.proto_type == betterproto.TYPE_MAP):
            raise DeriveError(f"{cls.__name__}.{f.name}: oneof member cannot be {label or 'map'}")
        return Field(f.name, md.number, ftype, label, md.group, doc, deprecated)

    def wkt(self, pkg: Package, name: str) -> str:
        pkg.imports.add("google/protobuf/" + WKT_FILES[name])
        return f"google.protobuf.{name}"

    def ref(self, pkg: Package, target) -> "Ref":
        """A reference to a message/enum; resolved to text after nesting."""
        if target in BUILTIN_WKT:
            full, path = BUILTIN_WKT[target]
            pkg.imports.add(path)
            return full
        mod = target.__module__
        if mod.startswith("betterproto.lib.google.protobuf"):
            return self.wkt(pkg, target.__name__)
        other = package_of(mod)
        if other != pkg.name:
            pkg.imports.add(self.package(other).path)
        return Ref(other, target.__name__)


@dataclasses.dataclass(frozen=True)
class Ref:
    package: str
    name: str  # flattened Python name


@dataclasses.dataclass(frozen=True)
class MapType:
    key: str
    value: "str | Ref"


def parent_message(pkg: Package, name: str) -> str | None:
    """The longest message name P with `name` == P + Child (Child capitalised)."""
    parents = [m for m in pkg.messages if name.startswith(m) and len(name) > len(m) and name[len(m)].isupper()]
    return max(parents, key=len) if parents else None


def scope_symbols(pkg: Package) -> list[tuple[str, str]]:
    """(symbol, owner) pairs defined in the package's top-level scope."""
    syms = [(n, "message " + n) for n in pkg.messages]
    syms += [(s, "service " + s) for s in pkg.services]
    for e in pkg.enums.values():
        if e.parent is None:
            syms.append((e.name, "enum " + e.name))
            syms += [(v, "enum " + e.name) for v, _, _ in e.values]
    return syms


def nest_colliding_enums(pkg: Package) -> None:
    """Move enums whose value names clash in package scope into their parent.

    Proto (C++ scoping) puts enum values next to their enum, so two top-level
    enums cannot share a value name, nor a value and a message name.  Merge
    avoided that by nesting; betterproto flattened `Parent.Child` into
    `ParentChild`.  We undo as little as possible: repeatedly nest the
    clashing enum (that has a parent message) with the most clashing names,
    ties broken by name, until nothing clashes.  This reproduces Merge's
    known layout, e.g. `Member.State` nested while `UserState` stays top-level.
    """
    while True:
        owners: dict[str, set[str]] = {}
        for sym, owner in scope_symbols(pkg):
            owners.setdefault(sym, set()).add(owner)
        clashes = {}
        for e in pkg.enums.values():
            if e.parent is None:
                n = sum(1 for v in [e.name] + [v for v, _, _ in e.values] if len(owners[v]) > 1)
                if n:
                    clashes[e.name] = n
        if not clashes:
            break
        candidates = sorted(
            (-n, name, parent)
            for name, n in clashes.items()
            if (parent := parent_message(pkg, name)) is not None
        )
        if not candidates:
            raise DeriveError(f"{pkg.name}: enums {sorted(clashes)} clash and cannot be nested")
        _, name, parent = candidates[0]
        pkg.enums[name].parent = parent
        pkg.messages[parent].nested.append(pkg.enums[name])
    # Re-check both scopes after nesting.
    seen: dict[str, str] = {}
    for sym, owner in scope_symbols(pkg):
        if sym in seen and seen[sym] != owner:
            raise DeriveError(f"{pkg.name}: {sym} defined by {seen[sym]} and {owner}")
        seen[sym] = owner
    for msg in pkg.messages.values():
        local: dict[str, str] = {f.name: "field" for f in msg.fields}
        local.update({f.group: "oneof" for f in msg.fields if f.group})
        for e in msg.nested:
            for sym in [e.local] + [v for v, _, _ in e.values]:
                if sym in local:
                    raise DeriveError(f"{msg.name}: nested {e.local}.{sym} clashes with a {local[sym]}")
                local[sym] = "enum " + e.local


# === Rendering ===============================================================

HEADER = """\
// Code generated by scripts/derive-protos.py from the PyPI package
// mergetbapi=={version} (https://gitlab.com/mergetb/api). DO NOT EDIT.
//
// These definitions are derived by introspecting the betterproto-generated
// Python bindings; they are wire-compatible with the MergeTB portal API but
// are not the original .proto sources (file layout, enum nesting and some
// names differ, and options such as google.api.http are omitted).
//
// The derived definitions and their comments remain subject to the licence
// of mergetbapi:
//
{licence}
"""


def comment(text: str | None, indent: str) -> list[str]:
    if not text or not text.strip():
        return []
    lines = inspect.cleandoc(text).splitlines()
    out = []
    for line in lines:
        # betterproto keeps the space that followed `//` on continuation lines.
        line = line[1:] if line.startswith(" ") else line
        out.append(f"{indent}//{' ' if line.strip() else ''}{line}".rstrip())
    return out


class Renderer:
    def __init__(self, deriver: Deriver, licence: str, version: str):
        self.d = deriver
        self.licence = "\n".join(("// " + l).rstrip() for l in licence.strip().splitlines())
        self.version = version

    def qualified(self, ref: Ref) -> str:
        target = self.d.packages[ref.package]
        if ref.name in target.enums and target.enums[ref.name].parent:
            e = target.enums[ref.name]
            local = f"{e.parent}.{e.local}"
        else:
            local = ref.name
        return f".{ref.package}.{local}"

    def type_text(self, pkg: Package, t, within: Message | None = None) -> str:
        if isinstance(t, MapType):
            return f"map<{t.key}, {self.type_text(pkg, t.value, within)}>"
        if isinstance(t, Ref):
            full = self.qualified(t)
            # Same-package references are written relative, like Merge did,
            # except inside a message with nested enums: their values live in
            # the message's scope and could shadow a relative name.
            relative = t.package == pkg.name and not (within and within.nested)
            return full[len(pkg.name) + 2:] if relative else full
        return t

    def render(self, pkg: Package) -> str:
        out = [HEADER.format(version=self.version, licence=self.licence).rstrip(), ""]
        out += ['syntax = "proto3";', "", f"package {pkg.name};", ""]
        if pkg.imports:
            out += [f'import "{i}";' for i in sorted(pkg.imports)] + [""]
        for name in sorted(pkg.services):
            out += self.service(pkg, pkg.services[name]) + [""]
        for name in sorted(pkg.enums):
            if pkg.enums[name].parent is None:
                out += self.enum(pkg.enums[name], "") + [""]
        for name in sorted(pkg.messages):
            out += self.message(pkg, pkg.messages[name]) + [""]
        return "\n".join(out).rstrip() + "\n"

    def service(self, pkg: Package, svc: Service) -> list[str]:
        out = [f"service {svc.name} {{"]
        for m in svc.methods:
            cs = "stream " if m.client_streaming else ""
            ss = "stream " if m.server_streaming else ""
            inp, outp = self.type_text(pkg, m.input), self.type_text(pkg, m.output)
            out.append(f"  rpc {m.name}({cs}{inp}) returns ({ss}{outp});")
        return out + ["}"]

    def enum(self, e: Enum, indent: str) -> list[str]:
        out = comment(e.doc, indent) + [f"{indent}enum {e.local} {{"]
        for name, number, doc in e.values:
            out += comment(doc, indent + "  ")
            out.append(f"{indent}  {name} = {number};")
        return out + [f"{indent}}}"]

    def message(self, pkg: Package, msg: Message) -> list[str]:
        out = comment(msg.doc, "") + [f"message {msg.name} {{"]
        for e in sorted(msg.nested, key=lambda e: e.local):
            out += self.enum(e, "  ")
        groups_done = set()
        for f in msg.fields:
            if f.group is None:
                out += self.field(pkg, msg, f, "  ")
            elif f.group not in groups_done:
                groups_done.add(f.group)
                out.append(f"  oneof {f.group} {{")
                for g in msg.fields:
                    if g.group == f.group:
                        out += self.field(pkg, msg, g, "    ")
                out.append("  }")
        return out + ["}"]

    def field(self, pkg: Package, msg: Message, f: Field, indent: str) -> list[str]:
        out = comment(f.doc, indent)
        if f.deprecated:
            out.append(f"{indent}// Deprecated in Merge.")
        out.append(f"{indent}{f.label}{self.type_text(pkg, f.type, msg)} {f.name} = {f.number};")
        return out


def licence_text() -> str:
    dist = metadata.distribution(ROOT)
    for f in dist.files or []:
        if f.name.upper().startswith("LICENSE"):
            return Path(dist.locate_file(f)).read_text()
    raise DeriveError("mergetbapi licence file not found")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="fail if files on disk differ")
    args = ap.parse_args()

    version = metadata.version(ROOT)
    if version != EXPECTED_VERSION:
        print(f"warning: mergetbapi {version}, expected {EXPECTED_VERSION}", file=sys.stderr)
    deriver = Deriver()
    deriver.run(ENTRY_PACKAGES)
    renderer = Renderer(deriver, licence_text(), version)

    stale = []
    for name in sorted(deriver.packages):
        pkg = deriver.packages[name]
        path = args.out / pkg.path
        text = renderer.render(pkg)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        nested = sum(1 for e in pkg.enums.values() if e.parent)
        print(
            f"{path}: {len(pkg.messages)} messages, {len(pkg.enums)} enums "
            f"({nested} re-nested), {len(pkg.services)} services, "
            f"{sum(len(s.methods) for s in pkg.services.values())} methods"
        )
    if stale:
        print("out of date: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DeriveError as e:
        print(f"derive-protos: {e}", file=sys.stderr)
        sys.exit(2)
