"""Compare mergexp's XIR descriptor with Trellis' `xir` package, field by field.

Usage: .venv/bin/python services/compiler/tools/check_xir_wire.py DESCRIPTOR_SET.bin

DESCRIPTOR_SET.bin is the `trellis_api_descriptor.bin` that trellis-api's build
script writes into its OUT_DIR. Starting from `xir.Network`, every message and
enum reachable from it in mergexp 0.3.0's `core.proto` is compared with the
message or enum of the same name in Trellis' `xir` package: per field number
the wire type, label (singular, repeated, map) and the referenced type must
agree, and per enum number the value must exist. Names are reported when they
differ but do not affect the wire format. Findings are INCOMPATIBLE (decoding
fails or values change), LOSSY (a mergexp field Trellis drops) or ONE-WAY
(decodes from mergexp but not back). Exit status 1 on any INCOMPATIBLE, or on
any finding at all with --strict.
"""

import sys

from google.protobuf import descriptor_pb2
from mergexp.pb import core_pb2

# Field types that share a wire encoding with each other (proto3 decoders
# accept either in place of the other, values aside).
WIRE = {
    descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE: "fixed64",
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED64: "fixed64",
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED64: "fixed64",
    descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT: "fixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED32: "fixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED32: "fixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_STRING: "len",
    descriptor_pb2.FieldDescriptorProto.TYPE_BYTES: "len",
    descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE: "len",
}
TYPE_NAMES = {v: k for k, v in descriptor_pb2.FieldDescriptorProto.Type.items()}


def index(files, package):
    """Maps '.pkg.Msg[.Nested]' to message or enum descriptor protos."""
    msgs, enums = {}, {}

    def walk(prefix, m):
        name = f"{prefix}.{m.name}"
        msgs[name] = m
        for n in m.nested_type:
            walk(name, n)
        for e in m.enum_type:
            enums[f"{name}.{e.name}"] = e

    for f in files:
        if f.package != package:
            continue
        for m in f.message_type:
            walk(f".{f.package}", m)
        for e in f.enum_type:
            enums[f".{f.package}.{e.name}"] = e
    return msgs, enums


def describe(field, msgs):
    if field.type == field.TYPE_MESSAGE and msgs.get(field.type_name) is not None \
            and msgs[field.type_name].options.map_entry:
        return "map"
    return "repeated" if field.label == field.LABEL_REPEATED else "singular"


def main():
    ours_set = descriptor_pb2.FileDescriptorSet()
    with open(sys.argv[1], "rb") as f:
        ours_set.ParseFromString(f.read())
    theirs_file = descriptor_pb2.FileDescriptorProto()
    core_pb2.DESCRIPTOR.CopyToProto(theirs_file)

    t_msgs, t_enums = index([theirs_file], "xir")
    o_msgs, o_enums = index(ours_set.file, "xir")

    problems, lossy, one_way, notes = [], [], [], []
    # Walk (mergexp type, Trellis type) pairs following the fields, so a type
    # that is only named differently (nesting flattened by the derivation,
    # NICSpec vs NicSpec) is still compared structurally.
    seen, todo = set(), [(".xir.Network", ".xir.Network")]
    checked_fields = 0
    while todo:
        name, oname = todo.pop()
        if (name, oname) in seen:
            continue
        seen.add((name, oname))
        if name != oname:
            notes.append(f"type {name} is {oname} in Trellis")
        if name in t_enums:
            te, oe = t_enums[name], o_enums.get(oname)
            if oe is None:
                problems.append(f"enum {name}: {oname} is not an enum in Trellis")
                continue
            o_vals = {v.number: v.name for v in oe.value}
            for v in te.value:
                if v.number not in o_vals:
                    problems.append(f"enum {name}: value {v.name}={v.number} missing in Trellis")
                elif o_vals[v.number].lower().replace("_", "") != v.name.lower().replace("_", ""):
                    notes.append(f"enum {name}: {v.number} is {v.name} in mergexp, {o_vals[v.number]} in Trellis")
            continue
        tm, om = t_msgs[name], o_msgs.get(oname)
        if om is None:
            problems.append(f"message {name}: {oname} is not a message in Trellis")
            continue
        o_fields = {f.number: f for f in om.field}
        for tf in tm.field:
            checked_fields += 1
            of = o_fields.get(tf.number)
            where = f"{name}.{tf.name} (#{tf.number})"
            if of is None:
                lossy.append(f"{where}: missing in Trellis, so prost skips it as an unknown field")
                continue
            if tf.type_name and of.type_name:
                todo.append((tf.type_name, of.type_name))
            if of.name.replace("_", "").lower() != tf.name.replace("_", "").lower():
                notes.append(f"{where}: named {of.name} in Trellis")
            t_wire = WIRE.get(tf.type, "varint")
            o_wire = WIRE.get(of.type, "varint")
            if t_wire != o_wire:
                problems.append(f"{where}: wire {t_wire} ({TYPE_NAMES[tf.type]}) vs {o_wire} ({TYPE_NAMES[of.type]})")
            elif tf.type != of.type:
                problems.append(f"{where}: type {TYPE_NAMES[tf.type]} vs {TYPE_NAMES[of.type]} (same wire type, different values)")
            shape = (describe(tf, t_msgs), describe(of, o_msgs))
            if shape == ("singular", "repeated") and tf.type == tf.TYPE_MESSAGE:
                # A singular message is encoded as one length-delimited record,
                # which a repeated field decodes as a one-element list.
                one_way.append(f"{where}: singular in mergexp, repeated in Trellis "
                               "(decodes as a list of one; Trellis must not emit more than one for mergexp)")
            elif shape[0] != shape[1]:
                problems.append(f"{where}: {describe(tf, t_msgs)} in mergexp, {describe(of, o_msgs)} in Trellis")
        extra = sorted(f"{o_fields[n].name}#{n}" for n in set(o_fields) - {f.number for f in tm.field})
        if extra:
            notes.append(f"message {name}: Trellis has extra fields {extra}")

    print(f"checked {len(seen)} messages/enums reachable from xir.Network, {checked_fields} fields")
    for n in notes:
        print("note:", n)
    for p in one_way:
        print("ONE-WAY:", p)
    for p in lossy:
        print("LOSSY:", p)
    for p in problems:
        print("INCOMPATIBLE:", p)
    print(f"{len(problems)} incompatible, {len(lossy)} lossy, {len(one_way)} one-way")
    strict = "--strict" in sys.argv[2:]
    sys.exit(1 if problems or (strict and (lossy or one_way)) else 0)


if __name__ == "__main__":
    main()
