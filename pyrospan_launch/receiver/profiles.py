"""Decode a Pyroscope push (``push.v1.PushRequest``) and the pprof profiles inside it.

:func:`decode_push` turns a ``push.v1.PusherService/Push`` body (usually gzip-compressed
as a whole) into :class:`ProfileSeries` objects.  Every ``RawSample.raw_profile`` is a
pprof ``perftools.profiles.Profile``, optionally gzip-compressed itself (detected by the
``1f 8b`` magic); :func:`decode_pprof` decodes one.  Malformed input raises
:class:`DecodeError`.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyrospan_launch.receiver.records import Frame, ProfileSample, ProfileSeries
from pyrospan_launch.wire import schemas
from pyrospan_launch.wire.body import (
    GZIP_MAGIC,
    MAX_DECOMPRESSED_BYTES,
    Budget,
    decompress_within,
    gunzip,
    parse_message,
)
from pyrospan_launch.wire.errors import DecodeError


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
    budget = Budget(max_decompressed_bytes)
    data = decompress_within(body, content_encoding, budget)
    request = parse_message(schemas.PushRequest, data, "PushRequest")
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
    return _decode_pprof(raw, dict(labels or {}), profile_id, Budget(max_decompressed_bytes))


def _decode_pprof(
    raw: bytes, labels: dict[str, str], profile_id: str, budget: Budget
) -> ProfileSeries:
    if raw[:2] == GZIP_MAGIC:
        raw = gunzip(raw, budget)
    profile = parse_message(schemas.Profile, raw, "pprof Profile")
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
