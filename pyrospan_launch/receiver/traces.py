"""Decode an OTLP/HTTP ``/v1/traces`` body (protobuf or JSON) into flat spans.

Malformed input raises :class:`DecodeError`; nothing here does I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Final

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from pyrospan_launch.receiver.records import ReceivedSpan
from pyrospan_launch.wire.body import (
    JSON_TYPES,
    MAX_DECOMPRESSED_BYTES,
    PROTOBUF_TYPES,
    Budget,
    decompress_within,
    media_type,
    parse_message,
)
from pyrospan_launch.wire.errors import DecodeError

# JSON keys holding ids, in both proto3-JSON spellings.
_ID_KEYS: Final = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")


def _hex_ids_to_base64(obj: dict[str, Any]) -> None:
    """OTLP/JSON writes ids as hex; protobuf's JSON parser wants base64 for bytes."""
    for key in _ID_KEYS:
        value = obj.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise DecodeError(f"{key} must be a hex string")
        try:
            obj[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
        except ValueError:
            raise DecodeError(f"{key} is not hex: {value[:40]!r}") from None


def _as_list(value: object, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise DecodeError(f"{what} must be a list")
    return value


def _as_dict(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DecodeError(f"{what} must be an object")
    return value


def _prepare_otlp_json(doc: object) -> dict[str, Any]:
    root = _as_dict(doc, "request")
    for rs in _as_list(root.get("resourceSpans", root.get("resource_spans")), "resourceSpans"):
        rs = _as_dict(rs, "resourceSpans[]")
        scope_spans = rs.get("scopeSpans", rs.get("scope_spans"))
        for ss in _as_list(scope_spans, "scopeSpans"):
            ss = _as_dict(ss, "scopeSpans[]")
            for span in _as_list(ss.get("spans"), "spans"):
                span = _as_dict(span, "spans[]")
                _hex_ids_to_base64(span)
                for link in _as_list(span.get("links"), "links"):
                    _hex_ids_to_base64(_as_dict(link, "links[]"))
    return root


def flatten_any_value(value: Any) -> object:
    """Turn an OTLP ``AnyValue`` into a plain Python value."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [flatten_any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: flatten_any_value(kv.value) for kv in value.kvlist_value.values}
    if which == "int_value":
        return int(value.int_value)
    if which == "bytes_value":
        return bytes(value.bytes_value)
    result: object = getattr(value, which)
    return result


def _attributes(key_values: Any) -> dict[str, object]:
    return {kv.key: flatten_any_value(kv.value) for kv in key_values}


def _hex_id(raw: bytes, size: int, what: str, *, optional: bool = False) -> str:
    if not raw and optional:
        return ""
    if len(raw) != size:
        raise DecodeError(f"{what} must be {size} bytes, got {len(raw)}")
    return binascii.hexlify(raw).decode("ascii")


def decode_otlp_traces(
    body: bytes,
    content_type: str | None,
    content_encoding: str | None,
    *,
    max_decompressed_bytes: int = MAX_DECOMPRESSED_BYTES,
) -> list[ReceivedSpan]:
    """Decode an OTLP/HTTP ``ExportTraceServiceRequest`` (protobuf or JSON) into spans.

    ``content_type`` ``application/x-protobuf`` (also assumed when empty) or
    ``application/json``; ``content_encoding`` identity, ``gzip`` or ``deflate``.
    """
    data = decompress_within(body, content_encoding, Budget(max_decompressed_bytes))
    kind = media_type(content_type)
    request = trace_service_pb2.ExportTraceServiceRequest()
    if kind in JSON_TYPES:
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise DecodeError(f"bad JSON: {str(exc)[:80]}") from None
        try:
            json_format.ParseDict(_prepare_otlp_json(doc), request, ignore_unknown_fields=True)
        except DecodeError:
            raise
        except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
            raise DecodeError(f"bad OTLP JSON: {str(exc)[:120]}") from None
    elif kind in PROTOBUF_TYPES or not kind:
        request = parse_message(trace_service_pb2.ExportTraceServiceRequest, data, "OTLP")
    else:
        raise DecodeError(f"unsupported content-type {kind!r}", 415)

    spans: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope_name = str(scope_spans.scope.name)
            scope_version = str(scope_spans.scope.version)
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        trace_id=_hex_id(bytes(span.trace_id), 16, "trace_id"),
                        span_id=_hex_id(bytes(span.span_id), 8, "span_id"),
                        parent_span_id=_hex_id(
                            bytes(span.parent_span_id), 8, "parent_span_id", optional=True
                        ),
                        name=str(span.name),
                        kind=int(span.kind),
                        start_ns=int(span.start_time_unix_nano),
                        end_ns=int(span.end_time_unix_nano),
                        attributes=_attributes(span.attributes),
                        resource=dict(resource),
                        scope_name=scope_name,
                        scope_version=scope_version,
                        status_code=int(span.status.code),
                        status_message=str(span.status.message),
                        flags=int(span.flags),
                    )
                )
    return spans
