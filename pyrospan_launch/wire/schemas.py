"""Protobuf message classes built at runtime for what the receiver decodes.

Two schemas are needed and neither ships as a Python package we can depend on:

* Pyroscope's push API (``push.v1.PusherService/Push``): ``push.v1.PushRequest``,
  ``push.v1.RawProfileSeries``, ``push.v1.RawSample``, ``push.v1.PushResponse`` and the
  ``types.v1.LabelPair`` they reference.
* The pprof profile format (``perftools.profiles.Profile`` and friends, from
  ``google/pprof``'s ``proto/profile.proto``).

Instead of generated ``*_pb2`` modules, the descriptors are described here as plain data
(message name -> fields with their real field numbers), turned into
``FileDescriptorProto`` objects, loaded into a private ``DescriptorPool`` and turned into
classes with ``message_factory.GetMessageClass``.  That API exists from protobuf 4.21 on,
so this works across the supported range (5.26 .. 7.x) without protoc, and a private pool
cannot collide with another copy of the same ``.proto`` registered in the default pool.

The message classes are dynamic, so they are typed as ``Any`` for mypy.
"""

from __future__ import annotations

from typing import Any, Final

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = [
    "PPROF_PACKAGE",
    "PUSH_PACKAGE",
    "TYPES_PACKAGE",
    "Function",
    "LabelPair",
    "Line",
    "Location",
    "Mapping",
    "Profile",
    "PushRequest",
    "PushResponse",
    "RawProfileSeries",
    "RawSample",
    "Sample",
    "SampleLabel",
    "ValueType",
]

_F = descriptor_pb2.FieldDescriptorProto

# (name, number, type, label, type_name or "") per field.
_FieldSpec = tuple[str, int, int, int, str]

_OPT: Final = _F.LABEL_OPTIONAL
_REP: Final = _F.LABEL_REPEATED
_INT64: Final = _F.TYPE_INT64
_UINT64: Final = _F.TYPE_UINT64
_BOOL: Final = _F.TYPE_BOOL
_STRING: Final = _F.TYPE_STRING
_BYTES: Final = _F.TYPE_BYTES
_MSG: Final = _F.TYPE_MESSAGE

TYPES_PACKAGE: Final = "types.v1"
PUSH_PACKAGE: Final = "push.v1"
PPROF_PACKAGE: Final = "perftools.profiles"

_TYPES_FILE: Final = "pyrospan/types/v1/types.proto"
_PUSH_FILE: Final = "pyrospan/push/v1/push.proto"
_PPROF_FILE: Final = "pyrospan/perftools/profiles/profile.proto"

# types.v1 (only what push.v1 needs).
_TYPES_MESSAGES: Final[dict[str, list[_FieldSpec]]] = {
    "LabelPair": [
        ("name", 1, _STRING, _OPT, ""),
        ("value", 2, _STRING, _OPT, ""),
    ],
}

# push.v1: the Connect/gRPC PusherService.Push request and response.
_PUSH_MESSAGES: Final[dict[str, list[_FieldSpec]]] = {
    "PushRequest": [
        ("series", 1, _MSG, _REP, ".push.v1.RawProfileSeries"),
    ],
    "RawProfileSeries": [
        ("labels", 1, _MSG, _REP, ".types.v1.LabelPair"),
        ("samples", 2, _MSG, _REP, ".push.v1.RawSample"),
    ],
    "RawSample": [
        ("raw_profile", 1, _BYTES, _OPT, ""),
        ("ID", 2, _STRING, _OPT, ""),
    ],
    "PushResponse": [],
}

# perftools.profiles: google/pprof proto/profile.proto (proto3).
_PPROF_MESSAGES: Final[dict[str, list[_FieldSpec]]] = {
    "Profile": [
        ("sample_type", 1, _MSG, _REP, ".perftools.profiles.ValueType"),
        ("sample", 2, _MSG, _REP, ".perftools.profiles.Sample"),
        ("mapping", 3, _MSG, _REP, ".perftools.profiles.Mapping"),
        ("location", 4, _MSG, _REP, ".perftools.profiles.Location"),
        ("function", 5, _MSG, _REP, ".perftools.profiles.Function"),
        ("string_table", 6, _STRING, _REP, ""),
        ("drop_frames", 7, _INT64, _OPT, ""),
        ("keep_frames", 8, _INT64, _OPT, ""),
        ("time_nanos", 9, _INT64, _OPT, ""),
        ("duration_nanos", 10, _INT64, _OPT, ""),
        ("period_type", 11, _MSG, _OPT, ".perftools.profiles.ValueType"),
        ("period", 12, _INT64, _OPT, ""),
        ("comment", 13, _INT64, _REP, ""),
        ("default_sample_type", 14, _INT64, _OPT, ""),
    ],
    "ValueType": [
        ("type", 1, _INT64, _OPT, ""),
        ("unit", 2, _INT64, _OPT, ""),
    ],
    "Sample": [
        ("location_id", 1, _UINT64, _REP, ""),
        ("value", 2, _INT64, _REP, ""),
        ("label", 3, _MSG, _REP, ".perftools.profiles.Label"),
    ],
    "Label": [
        ("key", 1, _INT64, _OPT, ""),
        ("str", 2, _INT64, _OPT, ""),
        ("num", 3, _INT64, _OPT, ""),
        ("num_unit", 4, _INT64, _OPT, ""),
    ],
    "Mapping": [
        ("id", 1, _UINT64, _OPT, ""),
        ("memory_start", 2, _UINT64, _OPT, ""),
        ("memory_limit", 3, _UINT64, _OPT, ""),
        ("file_offset", 4, _UINT64, _OPT, ""),
        ("filename", 5, _INT64, _OPT, ""),
        ("build_id", 6, _INT64, _OPT, ""),
        ("has_functions", 7, _BOOL, _OPT, ""),
        ("has_filenames", 8, _BOOL, _OPT, ""),
        ("has_line_numbers", 9, _BOOL, _OPT, ""),
        ("has_inline_frames", 10, _BOOL, _OPT, ""),
    ],
    "Location": [
        ("id", 1, _UINT64, _OPT, ""),
        ("mapping_id", 2, _UINT64, _OPT, ""),
        ("address", 3, _UINT64, _OPT, ""),
        ("line", 4, _MSG, _REP, ".perftools.profiles.Line"),
        ("is_folded", 5, _BOOL, _OPT, ""),
    ],
    "Line": [
        ("function_id", 1, _UINT64, _OPT, ""),
        ("line", 2, _INT64, _OPT, ""),
        ("column", 3, _INT64, _OPT, ""),
    ],
    "Function": [
        ("id", 1, _UINT64, _OPT, ""),
        ("name", 2, _INT64, _OPT, ""),
        ("system_name", 3, _INT64, _OPT, ""),
        ("filename", 4, _INT64, _OPT, ""),
        ("start_line", 5, _INT64, _OPT, ""),
    ],
}


def _file_proto(
    name: str,
    package: str,
    messages: dict[str, list[_FieldSpec]],
    dependencies: tuple[str, ...] = (),
) -> descriptor_pb2.FileDescriptorProto:
    """Describe one proto3 file holding ``messages`` as a ``FileDescriptorProto``."""
    fdp = descriptor_pb2.FileDescriptorProto(name=name, package=package, syntax="proto3")
    fdp.dependency.extend(dependencies)
    for message_name, fields in messages.items():
        msg = fdp.message_type.add(name=message_name)
        for field_name, number, field_type, label, type_name in fields:
            field = msg.field.add(name=field_name, number=number, type=field_type, label=label)
            if type_name:
                field.type_name = type_name
            # proto3 scalars without `optional` have no presence, like profile.proto.
    return fdp


def _build() -> tuple[descriptor_pool.DescriptorPool, dict[str, Any]]:
    pool = descriptor_pool.DescriptorPool()
    files = (
        _file_proto(_TYPES_FILE, TYPES_PACKAGE, _TYPES_MESSAGES),
        _file_proto(_PUSH_FILE, PUSH_PACKAGE, _PUSH_MESSAGES, (_TYPES_FILE,)),
        _file_proto(_PPROF_FILE, PPROF_PACKAGE, _PPROF_MESSAGES),
    )
    for fdp in files:
        pool.Add(fdp)
    classes: dict[str, Any] = {}
    for fdp in files:
        for msg in fdp.message_type:
            full_name = f"{fdp.package}.{msg.name}"
            classes[full_name] = message_factory.GetMessageClass(
                pool.FindMessageTypeByName(full_name)
            )
    return pool, classes


_POOL, _CLASSES = _build()


LabelPair: Any = _CLASSES["types.v1.LabelPair"]
PushRequest: Any = _CLASSES["push.v1.PushRequest"]
PushResponse: Any = _CLASSES["push.v1.PushResponse"]
RawProfileSeries: Any = _CLASSES["push.v1.RawProfileSeries"]
RawSample: Any = _CLASSES["push.v1.RawSample"]

Profile: Any = _CLASSES["perftools.profiles.Profile"]
ValueType: Any = _CLASSES["perftools.profiles.ValueType"]
Sample: Any = _CLASSES["perftools.profiles.Sample"]
#: pprof's ``Label`` (a per-sample label), named to avoid confusion with ``LabelPair``.
SampleLabel: Any = _CLASSES["perftools.profiles.Label"]
Mapping: Any = _CLASSES["perftools.profiles.Mapping"]
Location: Any = _CLASSES["perftools.profiles.Location"]
Line: Any = _CLASSES["perftools.profiles.Line"]
Function: Any = _CLASSES["perftools.profiles.Function"]
