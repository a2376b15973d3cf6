"""Turn marker frames into span labels and take them out of a pprof profile, in place.

A sample whose stack holds a marker frame (:mod:`pyrospan_launch.agent.spans.span_markers`) gets
the ``span_id``, ``span_name`` (and ``trace_id``) string labels of the innermost marker,
replacing any span labels that came from thread tags: the frame was read with the
stack, the tags up to a millisecond later, and a sample never carries two ``span_id``
values.  Every marker frame is removed from every stack; locations, functions and
strings nothing refers to any more are dropped, and samples left identical are merged.

Every label the rewrite writes, and every label of the push's series, fits Pyroscope's
limits (:mod:`pyrospan_launch.settings.label_limits`): a profile that breaks one is
rejected whole by the server.
"""

from __future__ import annotations

import gzip
from typing import Any

from pyrospan_launch.agent.spans.span_markers import PREFIX, parse
from pyrospan_launch.settings.label_limits import MAX_NAME_BYTES, fit_name, fit_value
from pyrospan_launch.wire import schemas
from pyrospan_launch.wire.body import decompress_body
from pyrospan_launch.wire.errors import DecodeError
from pyrospan_launch.wire.names import PID, SPAN_ID, SPAN_LABELS, SPAN_NAME, TRACE_ID

_GZIP_MAGIC = b"\x1f\x8b"
_PREFIX_BYTES = PREFIX.encode()


class _Strings:
    """The profile's string table, with strings added on demand."""

    def __init__(self, table: list[str]) -> None:
        self.table = table
        self._index: dict[str, int] | None = None

    def index(self, text: str) -> int:
        if self._index is None:
            self._index = {}
            for i, value in enumerate(self.table):
                self._index.setdefault(value, i)
        found = self._index.get(text)
        if found is None:
            found = len(self.table)
            self.table.append(text)
            self._index[text] = found
        return found


def add_pid(profile: Any, pid: str) -> bool:
    """Give every sample without a ``pid`` label this one; False when none lacked it.

    py-spy labels each sample with its process id (``report_pid``), the Stack sampler
    does not: the relay of the process adds it, so that both samplers' profiles carry it.
    """
    strings = _Strings(list(profile.string_table))
    key = strings.index(PID)
    changed = False
    for sample in profile.sample:
        if any(label.key == key for label in sample.label):
            continue
        _add(sample, strings, PID, pid)
        changed = True
    if changed:
        del profile.string_table[:]
        profile.string_table.extend(strings.table)
    return changed


def rewrite_profile(profile: Any) -> bool:
    """Rewrite one ``perftools.profiles.Profile`` message; False when it had no marker."""
    table: list[str] = list(profile.string_table)
    markers: dict[int, tuple[str, str, str]] = {}
    for function in profile.function:
        name = _at(table, function.name) or _at(table, function.system_name)
        parsed = parse(name, _at(table, function.filename))
        if parsed is not None:
            markers[function.id] = parsed
    if not markers:
        return False
    strings = _Strings(table)

    # Per location holding a marker: the innermost marker's labels (line[0] is innermost).
    location_labels: dict[int, tuple[str, str, str]] = {}
    whole_markers: set[int] = set()  # locations that are nothing but marker frames
    for location in profile.location:
        found = [markers[line.function_id] for line in location.line if line.function_id in markers]
        if not found:
            continue
        location_labels[location.id] = found[0]
        if len(found) == len(location.line):
            whole_markers.add(location.id)
        else:  # inlined frames besides the marker: keep them
            kept = [line for line in location.line if line.function_id not in markers]
            del location.line[:]
            location.line.extend(kept)

    span_keys = {i for i, value in enumerate(table) if value in SPAN_LABELS}
    for sample in profile.sample:
        ids = list(sample.location_id)  # leaf first
        labels = next((location_labels[i] for i in ids if i in location_labels), None)
        if labels is None:
            continue
        del sample.location_id[:]
        sample.location_id.extend(i for i in ids if i not in whole_markers)
        kept_labels = [label for label in sample.label if label.key not in span_keys]
        del sample.label[:]
        sample.label.extend(kept_labels)
        span_id, span_name, trace_id = labels
        _add(sample, strings, SPAN_ID, span_id)
        if span_name:
            _add(sample, strings, SPAN_NAME, fit_value(span_name))
        if trace_id:
            _add(sample, strings, TRACE_ID, trace_id)

    _merge_samples(profile)
    _drop_unreferenced(profile, table, set(markers))
    return True


def _at(table: list[str], index: int) -> str:
    return table[index] if 0 <= index < len(table) else ""


def _add(sample: Any, strings: _Strings, key: str, value: str) -> None:
    label = sample.label.add()
    label.key = strings.index(key)
    label.str = strings.index(value)


def _merge_samples(profile: Any) -> None:
    """Samples that differ only by a marker frame are one sample now: sum their values."""
    merged: dict[tuple[Any, ...], Any] = {}
    keep: list[Any] = []
    for sample in profile.sample:
        key = (
            tuple(sample.location_id),
            tuple((lb.key, lb.str, lb.num, lb.num_unit) for lb in sample.label),
        )
        first = merged.get(key)
        if first is None:
            merged[key] = sample
            keep.append(sample)
        elif len(first.value) == len(sample.value):
            for i, value in enumerate(sample.value):
                first.value[i] += value
        else:
            keep.append(sample)
    if len(keep) != len(profile.sample):
        copies = [type(sample)() for sample in keep]
        for copy, sample in zip(copies, keep, strict=True):
            copy.CopyFrom(sample)
        del profile.sample[:]
        profile.sample.extend(copies)


def _drop_unreferenced(profile: Any, table: list[str], marker_functions: set[int]) -> None:
    """Drop locations, functions and strings that nothing refers to any more."""
    used_locations = {i for sample in profile.sample for i in sample.location_id}
    locations = [loc for loc in profile.location if loc.id in used_locations]
    used_functions = {line.function_id for loc in locations for line in loc.line}
    functions = [
        fn for fn in profile.function if fn.id in used_functions and fn.id not in marker_functions
    ]
    _replace(profile.location, locations)
    _replace(profile.function, functions)

    # Every string index the profile uses, then the table without the others.
    used = {0}
    for value_type in (*profile.sample_type, profile.period_type):
        used.update((value_type.type, value_type.unit))
    used.update(profile.comment)
    used.update((profile.drop_frames, profile.keep_frames, profile.default_sample_type))
    for mapping in profile.mapping:
        used.update((mapping.filename, mapping.build_id))
    for fn in profile.function:
        used.update((fn.name, fn.system_name, fn.filename))
    for sample in profile.sample:
        for label in sample.label:
            used.update((label.key, label.str, label.num_unit))
    order = sorted(i for i in used if 0 <= i < len(table))
    remap = {old: new for new, old in enumerate(order)}

    def m(index: int) -> int:
        return remap.get(index, 0)

    for value_type in (*profile.sample_type, profile.period_type):
        value_type.type, value_type.unit = m(value_type.type), m(value_type.unit)
    comments = [m(i) for i in profile.comment]
    del profile.comment[:]
    profile.comment.extend(comments)
    profile.drop_frames = m(profile.drop_frames)
    profile.keep_frames = m(profile.keep_frames)
    profile.default_sample_type = m(profile.default_sample_type)
    for mapping in profile.mapping:
        mapping.filename, mapping.build_id = m(mapping.filename), m(mapping.build_id)
    for fn in profile.function:
        fn.name, fn.system_name, fn.filename = m(fn.name), m(fn.system_name), m(fn.filename)
    for sample in profile.sample:
        for label in sample.label:
            label.key, label.str, label.num_unit = m(label.key), m(label.str), m(label.num_unit)
    del profile.string_table[:]
    profile.string_table.extend(table[i] for i in order)


def _replace(field: Any, items: list[Any]) -> None:
    if len(items) == len(field):
        return
    copies = [type(item)() for item in items]
    for copy, item in zip(copies, items, strict=True):
        copy.CopyFrom(item)
    del field[:]
    field.extend(copies)


def rewrite_raw_profile(raw: bytes, max_bytes: int, pid: str | None = None) -> bytes:
    """One ``RawSample.raw_profile`` (gzipped or not), rewritten; the same bytes if no change.

    With ``pid``, samples without a ``pid`` label get it (:func:`add_pid`).
    """
    if pid is None and _PREFIX_BYTES not in raw and raw[:2] != _GZIP_MAGIC:
        return raw  # no marker name can be in an uncompressed profile without this
    zipped = raw[:2] == _GZIP_MAGIC
    data = decompress_body(raw, "gzip", max_bytes) if zipped else raw
    if pid is None and _PREFIX_BYTES not in data:
        return raw
    profile = schemas.Profile()
    try:
        profile.ParseFromString(data)
    except Exception as exc:  # protobuf's backends raise several types on garbage
        raise DecodeError(f"bad pprof Profile protobuf: {type(exc).__name__}") from None
    rewritten = _PREFIX_BYTES in data and rewrite_profile(profile)
    pid_added = pid is not None and add_pid(profile, pid)
    if not (rewritten or pid_added):
        return raw
    out: bytes = profile.SerializeToString()
    return gzip.compress(out, compresslevel=6) if zipped else out


def fit_series_labels(labels: Any, changes: set[str] | None = None) -> bool:
    """Fit a push series' labels (``types.v1.LabelPair``) in place; False if all fitted.

    A value is cut; a name too long to send leaves with its label.  ``changes`` gets one
    line for each kind of change, for the relay to say once.
    """
    changed = False
    kept = []
    for label in labels:
        name = fit_name(label.name)
        if name is None:
            changed = True
            if changes is not None:
                changes.add(
                    f"a profile label with an empty name or one of more than {MAX_NAME_BYTES} "
                    f"bytes ({label.name[:40]!r}) was left out"
                )
            continue
        value = fit_value(label.value)
        if value != label.value:
            changed = True
            label.value = value
            if changes is not None:
                changes.add(f"the value of the profile label {name} was cut to fit Pyroscope")
        kept.append(label)
    if len(kept) != len(labels):
        _replace(labels, kept)
    return changed


def rewrite_push(
    body: bytes,
    content_encoding: str | None,
    max_bytes: int,
    changes: set[str] | None = None,
    pid: str | None = None,
) -> bytes:
    """A ``push.v1.PushRequest`` body with every raw profile rewritten, encoded as it came.

    Series labels are fitted to Pyroscope's limits too (:func:`fit_series_labels`).
    """
    encoding = (content_encoding or "").strip().lower()
    data = decompress_body(body, encoding, max_bytes)
    request = schemas.PushRequest()
    try:
        request.ParseFromString(data)
    except Exception as exc:
        raise DecodeError(f"bad PushRequest protobuf: {type(exc).__name__}") from None
    changed = False
    for series in request.series:
        changed = fit_series_labels(series.labels, changes) or changed
        for sample in series.samples:
            raw = bytes(sample.raw_profile)
            new = rewrite_raw_profile(raw, max_bytes, pid)
            if new is not raw:
                sample.raw_profile = new
                changed = True
    if not changed:
        return body
    out: bytes = request.SerializeToString()
    if encoding in ("gzip", "x-gzip"):
        return gzip.compress(out, compresslevel=6)
    if encoding == "deflate":
        import zlib

        return zlib.compress(out)
    return out
