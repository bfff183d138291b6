#!/usr/bin/env python3
"""Check that Trellis' protos are wire-compatible with the PyPI `mergetbapi`.

Usage (in a venv with mergetbapi==1.6.0 and protobuf):
    python3 check_wire.py DESCRIPTORS.pb

DESCRIPTORS.pb is Trellis' encoded FileDescriptorSet, written by
`cargo run -p trellis-api --example dump-descriptors -- DESCRIPTORS.pb`.

This checker works from mergetbapi on its own: it does not share code with
scripts/derive-protos.py, so a bug there cannot hide itself here.

Checks, for the packages portal.v1, xir and reconcile:
  1. Static: the same messages and enums exist on both sides (betterproto
     flattens nested names, so `TaskStatus.StatusType` matches
     `TaskStatusStatusType`), every field has the same number, type, label,
     map key/value types, referenced message/enum, oneof group and proto3
     `optional`, and every enum has the same values.
  2. Dynamic: every message is filled with non-default sample values
     (recursively, depth-bounded, one oneof member at a time), serialized by
     betterproto, parsed by a google.protobuf class built from our
     descriptors (no unknown fields allowed, every value must come back the
     same), serialized again and parsed by betterproto, which must yield an
     equal message.
  3. Services: the gRPC paths, streaming kinds and request/response types
     called by the mergetbapi `*Stub` classes equal ours.

Exits 1 with a list of every mismatch, 0 with a summary otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import importlib
import inspect
import sys
import typing

import betterproto
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, unknown_fields

PACKAGES = ["portal.v1", "xir", "reconcile"]
MAX_DEPTH = 3
FDP = descriptor_pb2.FieldDescriptorProto
# betterproto proto_type -> FieldDescriptorProto type
BP_TYPES = {
    "double": FDP.TYPE_DOUBLE, "float": FDP.TYPE_FLOAT,
    "int64": FDP.TYPE_INT64, "uint64": FDP.TYPE_UINT64,
    "int32": FDP.TYPE_INT32, "fixed64": FDP.TYPE_FIXED64,
    "fixed32": FDP.TYPE_FIXED32, "bool": FDP.TYPE_BOOL,
    "string": FDP.TYPE_STRING, "message": FDP.TYPE_MESSAGE,
    "bytes": FDP.TYPE_BYTES, "uint32": FDP.TYPE_UINT32,
    "enum": FDP.TYPE_ENUM, "sfixed32": FDP.TYPE_SFIXED32,
    "sfixed64": FDP.TYPE_SFIXED64, "sint32": FDP.TYPE_SINT32,
    "sint64": FDP.TYPE_SINT64,
}
WKT = {datetime.datetime: "google.protobuf.Timestamp", datetime.timedelta: "google.protobuf.Duration"}
WRAPPERS = {
    "bool": "BoolValue", "int32": "Int32Value", "int64": "Int64Value",
    "uint32": "UInt32Value", "uint64": "UInt64Value", "float": "FloatValue",
    "double": "DoubleValue", "string": "StringValue", "bytes": "BytesValue",
}
UTC = datetime.timezone.utc


class Problems:
    def __init__(self):
        self.items: list[str] = []

    def add(self, where: str, what: str) -> None:
        self.items.append(f"{where}: {what}")


# === Our side: descriptors =====================================================


class Ours:
    """Our FileDescriptorSet, indexed by betterproto-style flattened names."""

    def __init__(self, data: bytes):
        fds = descriptor_pb2.FileDescriptorSet.FromString(data)
        self.pool = descriptor_pool.DescriptorPool()
        by_name = {f.name: f for f in fds.file}
        added: set[str] = set()

        def add(f):
            if f.name in added:
                return
            for dep in f.dependency:
                add(by_name[dep])
            self.pool.Add(f)
            added.add(f.name)

        for f in fds.file:
            add(f)
        # flattened full name ("portal.v1.TaskStatusStatusType") -> (full name, proto)
        self.messages: dict[str, tuple[str, descriptor_pb2.DescriptorProto]] = {}
        self.enums: dict[str, tuple[str, descriptor_pb2.EnumDescriptorProto]] = {}
        self.flat_of: dict[str, str] = {}  # full name -> flattened full name
        self.services: dict[str, tuple[str, descriptor_pb2.ServiceDescriptorProto]] = {}
        for f in fds.file:
            for m in f.message_type:
                self._index_message(f.package, "", m)
            for e in f.enum_type:
                self._index_enum(f.package, "", e)
            for s in f.service:
                self.services[f"{f.package}.{s.name}"] = (f.package, s)

    def _index_message(self, package: str, prefix: str, m) -> None:
        full, flat = f"{package}.{prefix}{m.name}", f"{package}.{prefix.replace('.', '')}{m.name}"
        self.flat_of[full] = flat
        if not m.options.map_entry:
            self.messages[flat] = (full, m)
        for n in m.nested_type:
            self._index_message(package, f"{prefix}{m.name}.", n)
        for e in m.enum_type:
            self._index_enum(package, f"{prefix}{m.name}.", e)

    def _index_enum(self, package: str, prefix: str, e) -> None:
        full, flat = f"{package}.{prefix}{e.name}", f"{package}.{prefix.replace('.', '')}{e.name}"
        self.flat_of[full] = flat
        self.enums[flat] = (full, e)

    def message_class(self, flat: str):
        return message_factory.GetMessageClass(self.pool.FindMessageTypeByName(self.messages[flat][0]))

    def flat_type(self, type_name: str) -> str:
        name = type_name.lstrip(".")
        return self.flat_of.get(name, name)

    def map_entry(self, type_name: str):
        return self.pool.FindMessageTypeByName(type_name.lstrip("."))


# === Their side: mergetbapi ====================================================


def module_for(package: str):
    return importlib.import_module(f"mergetbapi.{package}")


def bp_package(cls) -> str:
    return cls.__module__.removeprefix("mergetbapi.")


def bp_flat(cls) -> str:
    if cls in WKT:
        return WKT[cls]
    if cls.__module__.startswith("betterproto.lib.google.protobuf"):
        return f"google.protobuf.{cls.__name__}"
    return f"{bp_package(cls)}.{cls.__name__}"


def own(module, base) -> list[type]:
    return [
        c for c in vars(module).values()
        if inspect.isclass(c) and issubclass(c, base) and c.__module__ == module.__name__
    ]


def meta(f) -> betterproto.FieldMetadata:
    return f.metadata["betterproto"]


def is_list(cls, name) -> bool:
    return typing.get_origin(cls._type_hint(name)) is list


# === 1. Static comparison ======================================================


def check_static(ours: Ours, problems: Problems) -> tuple[int, int]:
    theirs_msgs, theirs_enums = {}, {}
    for package in PACKAGES:
        mod = module_for(package)
        theirs_msgs.update({bp_flat(c): c for c in own(mod, betterproto.Message)})
        theirs_enums.update({bp_flat(c): c for c in own(mod, betterproto.Enum)})
    in_scope = lambda name: any(name.startswith(p + ".") for p in PACKAGES)  # noqa: E731
    ours_msgs = {n for n in ours.messages if in_scope(n)}
    ours_enums = {n for n in ours.enums if in_scope(n)}
    for n in sorted(set(theirs_msgs) - ours_msgs):
        problems.add(n, "message missing from our protos")
    for n in sorted(ours_msgs - set(theirs_msgs)):
        problems.add(n, "message not in mergetbapi")
    for n in sorted(set(theirs_enums) - ours_enums):
        problems.add(n, "enum missing from our protos")
    for n in sorted(ours_enums - set(theirs_enums)):
        problems.add(n, "enum not in mergetbapi")

    for flat in sorted(set(theirs_enums) & ours_enums):
        want = {(v.name, int(v.value)) for v in theirs_enums[flat]}
        got = {(v.name, v.number) for v in ours.enums[flat][1].value}
        if want != got:
            problems.add(flat, f"enum values differ: only mergetbapi {sorted(want - got)}, only ours {sorted(got - want)}")

    for flat in sorted(set(theirs_msgs) & ours_msgs):
        check_message_static(ours, flat, theirs_msgs[flat], problems)
    return len(theirs_msgs), len(theirs_enums)


def check_message_static(ours: Ours, flat: str, cls, problems: Problems) -> None:
    _full, proto = ours.messages[flat]
    mine = {f.number: f for f in proto.field}
    theirs = {meta(f).number: f for f in dataclasses.fields(cls)}
    for n in sorted(set(theirs) - set(mine)):
        problems.add(f"{flat}.{theirs[n].name}", f"field number {n} missing from ours")
    for n in sorted(set(mine) - set(theirs)):
        problems.add(f"{flat}.{mine[n].name}", f"field number {n} not in mergetbapi")
    for n in sorted(set(mine) & set(theirs)):
        f, p = theirs[n], mine[n]
        where = f"{flat}.{f.name} (#{n})"
        for what in field_differences(ours, cls, f, p, proto):
            problems.add(where, what)


def field_differences(ours: Ours, cls, f, p, proto) -> list[str]:
    md = meta(f)
    out = []
    oneof = None
    if p.HasField("oneof_index") and not p.proto3_optional:
        oneof = proto.oneof_decl[p.oneof_index].name
    if oneof != md.group:
        out.append(f"oneof {oneof!r}, mergetbapi {md.group!r}")
    if bool(p.proto3_optional) != bool(md.optional):
        out.append(f"proto3 optional {p.proto3_optional}, mergetbapi {md.optional}")
    repeated = p.label == FDP.LABEL_REPEATED
    if md.proto_type == "map":
        entry = ours.map_entry(p.type_name) if p.type == FDP.TYPE_MESSAGE else None
        if entry is None or not entry.GetOptions().map_entry:
            return out + [f"mergetbapi has a map, ours is {FDP.Type.Name(p.type)}"]
        key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
        if key.type != BP_TYPES[md.map_types[0]]:
            out.append(f"map key type {key.type}, mergetbapi {md.map_types[0]}")
        if value.type != BP_TYPES[md.map_types[1]]:
            out.append(f"map value type {value.type}, mergetbapi {md.map_types[1]}")
        if md.map_types[1] in ("message", "enum"):
            target = value.message_type or value.enum_type
            want = bp_flat(cls._betterproto.cls_by_field[f.name + ".value"])
            if ours.flat_type(target.full_name) != want:
                out.append(f"map value {target.full_name}, mergetbapi {want}")
        return out
    if repeated != is_list(cls, f.name):
        out.append(f"repeated {repeated}, mergetbapi {is_list(cls, f.name)}")
    if md.wraps:
        want_type, want_name = FDP.TYPE_MESSAGE, f"google.protobuf.{WRAPPERS[md.wraps]}"
    else:
        want_type = BP_TYPES[md.proto_type]
        want_name = bp_flat(cls._betterproto.cls_by_field[f.name]) if md.proto_type in ("message", "enum") else None
    if p.type != want_type:
        out.append(f"type {FDP.Type.Name(p.type)}, mergetbapi {md.proto_type}")
    elif want_name and ours.flat_type(p.type_name) != want_name:
        out.append(f"type {p.type_name}, mergetbapi {want_name}")
    return out


# === 2. Dynamic round trip =====================================================


def sample_scalar(proto_type: str, number: int):
    return {
        "string": f"s{number}-\u00e9",
        "bytes": bytes([number % 256, 0, 255]),
        "bool": True,
        # Negative signed values tell int/sint/uint apart on the wire.
        "int32": -(1000 + number), "sint32": -(2000 + number), "sfixed32": -(3000 + number),
        "int64": -(2**40 + number), "sint64": -(2**41 + number), "sfixed64": -(2**42 + number),
        # Values above the signed range tell uint from int.
        "uint32": 2**31 + number, "fixed32": 2**31 + 7 + number,
        "uint64": 2**63 + number, "fixed64": 2**63 + 7 + number,
        "float": 1.5 + number,  # exact in binary32
        "double": 0.1 + number,
    }[proto_type]


def sample_enum(enum_cls):
    return max(enum_cls, key=lambda v: int(v.value))


def sample_value(proto_type: str, target, number: int, depth: int):
    if proto_type == "enum":
        return sample_enum(target)
    if proto_type == "message":
        if target is datetime.datetime:
            return datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
        if target is datetime.timedelta:
            return datetime.timedelta(seconds=3723, microseconds=450000)
        return fill(target, depth + 1, 0)
    return sample_scalar(proto_type, number)


def oneof_groups(cls) -> dict[str, list]:
    groups: dict[str, list] = {}
    for f in dataclasses.fields(cls):
        if meta(f).group:
            groups.setdefault(meta(f).group, []).append(f)
    return groups


def fill(cls, depth: int, variant: int):
    """A `cls` instance with every field set; `variant` picks oneof members."""
    obj = cls()
    if depth > MAX_DEPTH:
        return obj
    chosen = {g: fs[variant % len(fs)].name for g, fs in oneof_groups(cls).items()}
    for f in dataclasses.fields(cls):
        md = meta(f)
        if md.group and chosen[md.group] != f.name:
            continue
        if md.proto_type == "map":
            key_type, value_type = md.map_types
            vcls = cls._betterproto.cls_by_field.get(f.name + ".value")
            if value_type == "message" and depth + 1 > MAX_DEPTH:
                continue
            value = {
                sample_scalar(key_type, md.number + i): sample_value(value_type, vcls, md.number + i, depth)
                for i in (1, 2)
            }
        else:
            target = cls._betterproto.cls_by_field.get(f.name)
            if md.wraps:
                value = sample_scalar(md.wraps, md.number)
            elif md.proto_type == "message" and target not in WKT and depth + 1 > MAX_DEPTH:
                continue
            else:
                value = sample_value(md.proto_type, target, md.number, depth)
            if is_list(cls, f.name):
                second = sample_value(md.proto_type, target, md.number + 1, depth) if md.proto_type != "message" else value
                value = [value, second]
        setattr(obj, f.name, value)
    return obj


def unknown_in(msg, path: str) -> list[str]:
    """Unknown fields of `msg` and all its sub-messages."""
    out = [f"{path}: unknown field #{u.field_number} (wire type {u.wire_type})" for u in unknown_fields.UnknownFieldSet(msg)]
    for fd, value in msg.ListFields():
        if fd.type != fd.TYPE_MESSAGE:
            continue
        if fd.message_type.GetOptions().map_entry:
            vfd = fd.message_type.fields_by_name["value"]
            if vfd.type == vfd.TYPE_MESSAGE:
                for k, v in value.items():
                    out += unknown_in(v, f"{path}.{fd.name}[{k!r}]")
        elif fd.is_repeated:
            for i, v in enumerate(value):
                out += unknown_in(v, f"{path}.{fd.name}[{i}]")
        else:
            out += unknown_in(value, f"{path}.{fd.name}")
    return out


def compare(bp_value, our_value, proto_type: str, target, path: str, out: list[str]) -> None:
    if proto_type == "message":
        if target is datetime.datetime:
            got = our_value.ToDatetime(tzinfo=UTC)
            if got != bp_value:
                out.append(f"{path}: timestamp {got}, sent {bp_value}")
        elif target is datetime.timedelta:
            got = our_value.ToTimedelta()
            if got != bp_value:
                out.append(f"{path}: duration {got}, sent {bp_value}")
        else:
            compare_message(bp_value, our_value, path, out)
        return
    if proto_type == "enum":
        bp_value = int(bp_value)
    if type(our_value) is not type(bp_value) or our_value != bp_value:
        out.append(f"{path}: got {our_value!r} ({type(our_value).__name__}), sent {bp_value!r} ({type(bp_value).__name__})")


def compare_message(bp, ours, path: str, out: list[str]) -> None:
    cls = type(bp)
    by_number = {fd.number: fd for fd in ours.DESCRIPTOR.fields}
    for f in dataclasses.fields(cls):
        md = meta(f)
        where = f"{path}.{f.name}"
        if md.group and betterproto.which_one_of(bp, md.group)[0] != f.name:
            continue
        value = getattr(bp, f.name)
        fd = by_number.get(md.number)
        if fd is None:
            out.append(f"{where}: no field #{md.number} on our side")
            continue
        if md.group:
            oneof = fd.containing_oneof
            if oneof is None or ours.WhichOneof(oneof.name) != fd.name:
                out.append(f"{where}: oneof member #{md.number} not set on our side")
                continue
        if md.proto_type == "map":
            mine = getattr(ours, fd.name)
            if set(mine.keys()) != set(value.keys()):
                out.append(f"{where}: map keys {sorted(mine.keys())}, sent {sorted(value.keys())}")
                continue
            vcls = cls._betterproto.cls_by_field.get(f.name + ".value")
            for k, v in value.items():
                compare(v, mine[k], md.map_types[1], vcls, f"{where}[{k!r}]", out)
            continue
        target = cls._betterproto.cls_by_field.get(f.name)
        if md.wraps:
            mine = getattr(ours, fd.name)
            compare(value, mine.value, md.wraps, None, where, out)
            continue
        if is_list(cls, f.name):
            mine = list(getattr(ours, fd.name))
            if len(mine) != len(value):
                out.append(f"{where}: {len(mine)} elements, sent {len(value)}")
                continue
            for i, (a, b) in enumerate(zip(value, mine)):
                compare(a, b, md.proto_type, target, f"{where}[{i}]", out)
            continue
        if md.proto_type == "message" and value is not None and not ours.HasField(fd.name):
            if bytes(value) or target in WKT:
                out.append(f"{where}: message not set on our side")
            continue
        compare(value, getattr(ours, fd.name), md.proto_type, target, where, out)


def check_dynamic(ours: Ours, problems: Problems) -> int:
    cases = 0
    for package in PACKAGES:
        for cls in own(module_for(package), betterproto.Message):
            flat = bp_flat(cls)
            if flat not in ours.messages:
                continue  # reported by the static check
            our_cls = ours.message_class(flat)
            variants = max([len(fs) for fs in oneof_groups(cls).values()] or [1])
            for variant in range(variants):
                cases += 1
                name = f"{flat}[variant {variant}]" if variants > 1 else flat
                for what in round_trip(cls, our_cls, variant):
                    problems.add(name, what)
    return cases


def round_trip(cls, our_cls, variant: int) -> list[str]:
    sent = fill(cls, 0, variant)
    data = bytes(sent)
    if not data and dataclasses.fields(cls):
        return ["sample serialized to nothing"]
    try:
        ours = our_cls.FromString(data)
    except Exception as e:  # noqa: BLE001 - any parse failure is a finding
        return [f"our parser rejected betterproto bytes: {e}"]
    out = unknown_in(ours, "")
    compare_message(sent, ours, "", out)
    again = ours.SerializeToString()
    try:
        back = cls().parse(again)
    except Exception as e:  # noqa: BLE001
        return out + [f"betterproto rejected our bytes: {e}"]
    if back != sent:
        out.append(f"betterproto parse of our bytes differs:\n    sent {sent!r}\n    back {back!r}")
    return out


# === 3. Services ================================================================


class Call(Exception):
    def __init__(self, route, client_streaming, server_streaming, request_type, response_type):
        super().__init__(route)
        self.route = route
        self.kind = (client_streaming, server_streaming)
        self.request_type, self.response_type = request_type, response_type


def stub_calls(module) -> list[Call]:
    """Every call the module's `*Stub` classes make, captured at the transport."""

    def capture(cs, ss):
        def record(self, route, *args, **_kw):
            if cs:
                _iterator, request_type, response_type = args
            else:
                request, response_type = args
                request_type = type(request)
            raise Call(route, cs, ss, request_type, response_type)

        if ss:
            async def gen(self, *a, **kw):
                record(self, *a, **kw)
                yield None
            return gen

        async def coro(self, *a, **kw):
            record(self, *a, **kw)
        return coro

    transport = {
        "_unary_unary": capture(False, False), "_unary_stream": capture(False, True),
        "_stream_unary": capture(True, False), "_stream_stream": capture(True, True),
    }
    calls = []
    for stub_cls in own(module, betterproto.ServiceStub):
        stub = type("Capture", (stub_cls,), transport)(None)
        for name, func in vars(stub_cls).items():
            if not (inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)):
                continue
            params = list(inspect.signature(func).parameters.values())
            ann = params[1].annotation
            if isinstance(ann, str):
                ann = vars(module)[ann]
            # Unary methods get a real request so its type can be observed.
            arg = [] if typing.get_origin(ann) is typing.Union else ann()

            async def run():
                result = getattr(stub, name)(arg)
                if inspect.isasyncgen(result):
                    async for _ in result:
                        pass
                else:
                    await result

            try:
                asyncio.run(run())
            except Call as call:
                calls.append(call)
                continue
            raise RuntimeError(f"{stub_cls.__name__}.{name} made no call")
    return calls


def check_services(ours: Ours, problems: Problems) -> int:
    theirs = {}
    for package in PACKAGES:
        for call in stub_calls(module_for(package)):
            theirs[call.route] = (call.kind, bp_flat(call.request_type), bp_flat(call.response_type))
    mine = {}
    for full, (_package, svc) in ours.services.items():
        for m in svc.method:
            mine[f"/{full}/{m.name}"] = (
                (m.client_streaming, m.server_streaming),
                ours.flat_type(m.input_type),
                ours.flat_type(m.output_type),
            )
    for path in sorted(set(theirs) - set(mine)):
        problems.add(path, "method missing from our protos")
    for path in sorted(set(mine) - set(theirs)):
        problems.add(path, "method not in mergetbapi")
    for path in sorted(set(theirs) & set(mine)):
        if theirs[path] != mine[path]:
            problems.add(path, f"(streaming, input, output) ours {mine[path]}, mergetbapi {theirs[path]}")
    return len(theirs)


def main() -> int:
    ap = argparse.ArgumentParser(description="Check Trellis protos against mergetbapi.")
    ap.add_argument("descriptors", help="encoded FileDescriptorSet written by dump-descriptors")
    args = ap.parse_args()
    with open(args.descriptors, "rb") as f:
        ours = Ours(f.read())
    problems = Problems()
    n_messages, n_enums = check_static(ours, problems)
    n_cases = check_dynamic(ours, problems)
    n_methods = check_services(ours, problems)
    n_services = len({p.rsplit("/", 1)[0] for p in ours.services})
    if problems.items:
        print(f"wire check FAILED: {len(problems.items)} mismatch(es)", file=sys.stderr)
        for item in problems.items:
            print("  - " + item, file=sys.stderr)
        return 1
    from importlib import metadata
    print(
        f"wire check OK against mergetbapi {metadata.version('mergetbapi')}: "
        f"{n_messages} messages ({n_cases} round trips), {n_enums} enums, "
        f"{n_services} services, {n_methods} methods checked"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
