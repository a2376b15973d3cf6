"""Pure decoding functions for what the receiver accepts over HTTP.

* :func:`decode_push` turns a Pyroscope ``push.v1.PusherService/Push`` body (a
  ``push.v1.PushRequest``, usually gzip-compressed as a whole) into :class:`ProfileSeries`
  objects.  Every ``RawSample.raw_profile`` is a pprof ``perftools.profiles.Profile``,
  optionally gzip-compressed itself (detected by the ``1f 8b`` magic).
* :func:`decode_pprof` decodes one pprof profile.
* :func:`decode_otlp_traces` turns an OTLP/HTTP ``/v1/traces`` body (protobuf or JSON)
  into flat :class:`ReceivedSpan` objects.

Everything malformed raises :class:`DecodeError` (a ``ValueError``) with a short message;
nothing here does I/O.  Decompression is streamed with a hard output cap shared by the
whole request, so a small gzip bomb cannot expand into gigabytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from google.protobuf import json_format
from google.protobuf.message import DecodeError as _ProtobufDecodeError
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from pyrospan_launch.receiver import schemas

__all__ = [
    "MAX_DECOMPRESSED_BYTES",
    "DecodeError",
    "Frame",
    "ProfileSample",
    "ProfileSeries",
    "ReceivedSpan",
    "RequestInfo",
    "decode_otlp_traces",
    "decode_pprof",
    "decode_push",
    "decompress_body",
    "flatten_any_value",
    "is_json_content_type",
    "media_type",
]

#: Default cap on the bytes one request may decompress to (outer body + inner profiles).
MAX_DECOMPRESSED_BYTES: Final = 64 * 1024 * 1024

_GZIP_MAGIC: Final = b"\x1f\x8b"
_CHUNK: Final = 1024 * 1024

_PROTOBUF_TYPES: Final = frozenset(
    {"application/x-protobuf", "application/protobuf", "application/proto"}
)
_JSON_TYPES: Final = frozenset({"application/json"})

# OTLP SpanFlags: bit 8 says whether bit 9 (parent is remote) is known.
_FLAG_HAS_IS_REMOTE: Final = 0x100
_FLAG_IS_REMOTE: Final = 0x200


class DecodeError(ValueError):
    """A request body could not be decoded.

    ``http_status`` is the status a server should answer with: 400 for malformed input,
    413 when the body decompresses past the cap, 415 for an unsupported content type or
    content encoding.
    """

    def __init__(self, message: str, http_status: int = 400) -> None:
        super().__init__(message)
        self.http_status = http_status


# --------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class RequestInfo:
    """What the receiver keeps about one HTTP request (never any secret).

    ``has_authorization`` only records whether an ``Authorization`` header was present;
    its value is never stored.  ``tenant_id`` is the ``X-Scope-OrgID`` header.
    """

    seq: int
    received_at: float
    method: str
    path: str
    status: int
    user_agent: str = ""
    has_authorization: bool = False
    tenant_id: str = ""
    content_type: str = ""
    content_encoding: str = ""
    content_length: int = 0
    error: str = ""


@dataclass(frozen=True)
class Frame:
    """One stack frame of a profile sample."""

    name: str
    filename: str = ""
    line: int = 0


@dataclass(frozen=True)
class ProfileSample:
    """One pprof sample, resolved against the profile's tables.

    ``stack`` holds function names root first (the leaf is last); ``frames`` is the same
    stack with file and line.  ``values`` line up with the profile's ``sample_types``.
    ``labels`` are the pprof string labels (pyroscope-io puts thread tags such as
    ``span_id`` here); ``num_labels`` the numeric ones.
    """

    stack: tuple[str, ...]
    values: tuple[int, ...]
    labels: dict[str, str] = field(default_factory=dict)
    num_labels: dict[str, int] = field(default_factory=dict)
    frames: tuple[Frame, ...] = ()
    # Every string label in order, repeats included: a key that appears twice (two
    # span_id values on one sample) shows here, where ``labels`` keeps only the last.
    label_pairs: tuple[tuple[str, str], ...] = ()

    @property
    def leaf(self) -> str:
        """The innermost function name, or ``""`` for an empty stack."""
        return self.stack[-1] if self.stack else ""


@dataclass(frozen=True)
class ProfileSeries:
    """One decoded profile of one push series.

    ``labels`` are the series labels (``__name__`` such as ``process_cpu``,
    ``service_name`` and the profiler's tags).  A ``RawProfileSeries`` carrying several
    raw profiles yields one ``ProfileSeries`` per profile, all with the same labels.
    """

    labels: dict[str, str]
    samples: list[ProfileSample]
    sample_types: list[tuple[str, str]] = field(default_factory=list)
    period_type: tuple[str, str] = ("", "")
    period: int = 0
    time_nanos: int = 0
    duration_nanos: int = 0
    profile_id: str = ""
    request: RequestInfo | None = None

    @property
    def name(self) -> str:
        """The ``__name__`` label, e.g. ``process_cpu``."""
        return self.labels.get("__name__", "")

    @property
    def service_name(self) -> str:
        """The ``service_name`` label (pyroscope-io's ``application_name``)."""
        return self.labels.get("service_name", "")


@dataclass(frozen=True)
class ReceivedSpan:
    """One OTLP span, flattened.

    Ids are lowercase hex (``trace_id`` 32 chars, ``span_id`` 16, ``parent_span_id`` 16 or
    ``""`` for a root span).  ``kind`` and ``status_code`` are the OTLP enum numbers.
    Attribute values are flattened ``AnyValue``s: str, bool, int, float, bytes, list, dict
    or ``None``.
    """

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, object]
    resource: dict[str, object]
    scope_name: str
    scope_version: str = ""
    status_code: int = 0
    status_message: str = ""
    flags: int = 0

    @property
    def is_root(self) -> bool:
        """True when the span has no parent at all."""
        return not self.parent_span_id

    @property
    def parent_is_remote(self) -> bool | None:
        """Whether the parent lives in another process, if the exporter said so."""
        if not self.flags & _FLAG_HAS_IS_REMOTE:
            return None
        return bool(self.flags & _FLAG_IS_REMOTE)

    @property
    def duration_ns(self) -> int:
        """``end_ns - start_ns``."""
        return self.end_ns - self.start_ns


# --------------------------------------------------------------------------- compression


class _Budget:
    """Bytes a request may still decompress to."""

    __slots__ = ("limit", "remaining")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.remaining = limit


def _inflate(data: bytes, wbits: int, budget: _Budget) -> bytes:
    """Stream-decompress ``data`` (possibly several gzip members) within ``budget``."""
    out = bytearray()
    pending = data
    try:
        while True:
            dec = zlib.decompressobj(wbits)
            chunk = pending
            while not dec.eof:
                room = budget.remaining - len(out)
                # max_length=0 would mean "unlimited": always ask for at least one byte,
                # and one byte more than allowed so overflow is detectable.
                piece = dec.decompress(chunk, min(_CHUNK, room + 1))
                out += piece
                if len(out) > budget.remaining:
                    raise DecodeError(f"body decompresses to more than {budget.limit} bytes", 413)
                chunk = dec.unconsumed_tail
                if not piece and not chunk:
                    raise DecodeError("truncated compressed data")
            pending = dec.unused_data
            if not pending.strip(b"\x00"):
                break
    except zlib.error as exc:
        raise DecodeError(f"bad compressed data: {exc}") from None
    budget.remaining -= len(out)
    return bytes(out)


def _gunzip(data: bytes, budget: _Budget) -> bytes:
    return _inflate(data, 16 + zlib.MAX_WBITS, budget)


def decompress_body(
    body: bytes,
    content_encoding: str | None,
    max_decompressed_bytes: int = MAX_DECOMPRESSED_BYTES,
) -> bytes:
    """Undo an HTTP ``Content-Encoding`` (identity, gzip, or deflate) with a size cap."""
    return _decompress(body, content_encoding, _Budget(max_decompressed_bytes))


def _decompress(body: bytes, content_encoding: str | None, budget: _Budget) -> bytes:
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip"):
        return _gunzip(body, budget)
    if encoding == "deflate":
        # RFC 9110 "deflate" is a zlib stream; 32 + MAX_WBITS also accepts gzip.
        return _inflate(body, 32 + zlib.MAX_WBITS, budget)
    raise DecodeError(f"unsupported content-encoding {encoding!r}", 415)


def media_type(content_type: str | None) -> str:
    """``"Application/JSON; charset=utf-8"`` -> ``"application/json"``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json_content_type(content_type: str | None) -> bool:
    """True for ``application/json`` (any parameters)."""
    return media_type(content_type) in _JSON_TYPES


def _parse(cls: Any, data: bytes, what: str) -> Any:
    msg = cls()
    try:
        msg.ParseFromString(data)
    except _ProtobufDecodeError as exc:
        raise DecodeError(f"bad {what} protobuf: {exc}") from None
    except Exception as exc:  # the C/upb backends raise a few other types on garbage
        raise DecodeError(f"bad {what} protobuf: {type(exc).__name__}") from None
    return msg


# --------------------------------------------------------------------------- pprof / push


def decode_push(
    body: bytes,
    content_encoding: str | None,
    *,
    max_decompressed_bytes: int = MAX_DECOMPRESSED_BYTES,
) -> list[ProfileSeries]:
    """Decode a ``push.v1.PushRequest`` body into one :class:`ProfileSeries` per profile.

    ``content_encoding`` is the HTTP ``Content-Encoding`` (pyroscope-io sends ``gzip``).
    Raw profiles that start with the gzip magic are gunzipped too; all decompression
    of one call shares ``max_decompressed_bytes``.
    """
    budget = _Budget(max_decompressed_bytes)
    data = _decompress(body, content_encoding, budget)
    request = _parse(schemas.PushRequest, data, "PushRequest")
    result: list[ProfileSeries] = []
    for raw_series in request.series:
        labels = {pair.name: pair.value for pair in raw_series.labels}
        for raw_sample in raw_series.samples:
            result.append(
                _decode_pprof(bytes(raw_sample.raw_profile), labels, str(raw_sample.ID), budget)
            )
    return result


def decode_pprof(
    raw: bytes,
    *,
    labels: Mapping[str, str] | None = None,
    profile_id: str = "",
    max_decompressed_bytes: int = MAX_DECOMPRESSED_BYTES,
) -> ProfileSeries:
    """Decode one pprof ``Profile`` (gzipped or not) into a :class:`ProfileSeries`."""
    return _decode_pprof(raw, dict(labels or {}), profile_id, _Budget(max_decompressed_bytes))


def _decode_pprof(
    raw: bytes, labels: dict[str, str], profile_id: str, budget: _Budget
) -> ProfileSeries:
    if raw[:2] == _GZIP_MAGIC:
        raw = _gunzip(raw, budget)
    profile = _parse(schemas.Profile, raw, "pprof Profile")
    strings: list[str] = list(profile.string_table)

    def s(index: int) -> str:
        if index == 0 and not strings:
            return ""
        if not 0 <= index < len(strings):
            raise DecodeError(f"pprof string index {index} out of range")
        return strings[index]

    functions: dict[int, tuple[str, str]] = {}
    for fn in profile.function:
        name = s(fn.name) or s(fn.system_name) or "?"
        functions[fn.id] = (name, s(fn.filename))

    # Per location: its frames root first (pprof lists inlined callees first).
    locations: dict[int, tuple[Frame, ...]] = {}
    for loc in profile.location:
        frames: list[Frame] = []
        for line in reversed(loc.line):
            fn_info = functions.get(line.function_id)
            if fn_info is None:
                raise DecodeError(f"pprof line refers to unknown function {line.function_id}")
            frames.append(Frame(fn_info[0], fn_info[1], line.line))
        if not frames:
            frames.append(Frame(f"0x{loc.address:x}" if loc.address else "?"))
        locations[loc.id] = tuple(frames)

    samples: list[ProfileSample] = []
    for sample in profile.sample:
        stack_frames: list[Frame] = []
        for location_id in reversed(sample.location_id):
            loc_frames = locations.get(location_id)
            if loc_frames is None:
                raise DecodeError(f"pprof sample refers to unknown location {location_id}")
            stack_frames.extend(loc_frames)
        str_labels: dict[str, str] = {}
        num_labels: dict[str, int] = {}
        pairs: list[tuple[str, str]] = []
        for label in sample.label:
            key = s(label.key)
            if label.str or not (label.num or label.num_unit):
                str_labels[key] = s(label.str)
                pairs.append((key, str_labels[key]))
            else:
                num_labels[key] = int(label.num)
        samples.append(
            ProfileSample(
                stack=tuple(frame.name for frame in stack_frames),
                values=tuple(int(v) for v in sample.value),
                labels=str_labels,
                num_labels=num_labels,
                frames=tuple(stack_frames),
                label_pairs=tuple(pairs),
            )
        )

    return ProfileSeries(
        labels=labels,
        samples=samples,
        sample_types=[(s(vt.type), s(vt.unit)) for vt in profile.sample_type],
        period_type=(s(profile.period_type.type), s(profile.period_type.unit)),
        period=int(profile.period),
        time_nanos=int(profile.time_nanos),
        duration_nanos=int(profile.duration_nanos),
        profile_id=profile_id,
    )


# --------------------------------------------------------------------------- OTLP traces

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
    data = _decompress(body, content_encoding, _Budget(max_decompressed_bytes))
    kind = media_type(content_type)
    request = trace_service_pb2.ExportTraceServiceRequest()
    if kind in _JSON_TYPES:
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
    elif kind in _PROTOBUF_TYPES or not kind:
        request = _parse(trace_service_pb2.ExportTraceServiceRequest, data, "OTLP")
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
