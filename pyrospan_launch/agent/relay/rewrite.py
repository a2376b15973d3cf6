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

from pyrospan_launch.agent.spans.openings import OPENINGS
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
    # No sample can have a pid label when the table lacks the name: skip the checks.
    had_key = PID in strings.table
    key = strings.index(PID)
    value = strings.index(pid)
    changed = False
    for sample in profile.sample:
        if had_key and any(label.key == key for label in sample.label):
            continue
        sample.label.add(key=key, str=value)
        changed = True
    if changed:
        del profile.string_table[:]
        profile.string_table.extend(strings.table)
    return changed


def rewrite_profile(profile: Any) -> bool:
    """Rewrite one ``perftools.profiles.Profile`` message; False when it had no marker.

    It runs on every push of a busy process, so the work per sample stays in protobuf's
    and Python's C code (set intersections, ``list.remove``) rather than Python loops over
    each sample's frames: a push holds thousands of samples 60 to 100 frames deep.
    """
    table: list[str] = list(profile.string_table)
    markers = _marker_functions(profile, table)
    if not markers:
        return False
    strings = _Strings(table)
    location_labels, whole_markers = _marker_locations(profile, markers)

    marked = set(location_labels)
    # Opening markers bound to no span (spans/openings): their frames go, no label comes.
    unbound = {loc for loc, labels in location_labels.items() if not labels[0]}
    span_keys = {i for i, value in enumerate(table) if value in SPAN_LABELS}
    # Rewritten samples by what now tells them apart: the first of each keeps the values.
    merged: dict[tuple[Any, ...], Any] = {}
    duplicates: list[int] = []
    for position, sample in enumerate(profile.sample):
        ids = list(sample.location_id)  # leaf first
        present = marked.intersection(ids)
        if not present:
            continue
        labelling = present - unbound if unbound else present
        innermost = None
        if len(labelling) > 1:
            innermost = min(labelling, key=ids.index)
        elif labelling:
            innermost = next(iter(labelling))
        dropped = present & whole_markers
        if dropped:
            for location_id in dropped:
                while location_id in ids:
                    ids.remove(location_id)
            del sample.location_id[:]
            sample.location_id.extend(ids)
        labels = sample.label
        # None: only unbound openings, whose frames went; the sample's labels stay.
        span_labels = location_labels[innermost] if innermost is not None else None
        if span_labels is not None and span_keys and any(lb.key in span_keys for lb in labels):
            kept_labels = [label for label in labels if label.key not in span_keys]
            del labels[:]
            labels.extend(kept_labels)
        others = tuple((lb.key, lb.str, lb.num, lb.num_unit) for lb in labels) if labels else ()
        if span_labels is not None:
            span_id, span_name, trace_id = span_labels
            _add(sample, strings, SPAN_ID, span_id)
            if span_name:
                _add(sample, strings, SPAN_NAME, fit_value(span_name))
            if trace_id:
                _add(sample, strings, TRACE_ID, trace_id)
        # Samples that differed only by a marker frame are one sample now: sum their
        # values.  Only rewritten samples can have become equal (only they lost a marker).
        key = (tuple(ids), span_labels, others)
        first = merged.get(key)
        if first is None:
            merged[key] = sample
        elif len(first.value) == len(sample.value):
            for i, value in enumerate(sample.value):
                first.value[i] += value
            duplicates.append(position)
    for position in reversed(duplicates):
        del profile.sample[position]

    _drop_markers(profile, table, set(markers), whole_markers)
    return True


def _marker_functions(profile: Any, table: list[str]) -> dict[int, tuple[str, str, str]]:
    """The labels of each marker function, by function id."""
    # Only a function named by a string with the marker prefix can be a marker: test the
    # string table once instead of decoding every function's names.
    named = {i for i, text in enumerate(table) if text.startswith(PREFIX)}
    markers: dict[int, tuple[str, str, str]] = {}
    if not named:
        return markers
    for function in profile.function:
        name_index, system_index = function.name, function.system_name
        if name_index not in named and system_index not in named:
            continue
        name = _at(table, name_index) or _at(table, system_index)
        parsed = parse(name, _at(table, function.filename)) or OPENINGS.labels(name)
        if parsed is not None:
            markers[function.id] = parsed
    return markers


def _marker_locations(
    profile: Any, markers: dict[int, tuple[str, str, str]]
) -> tuple[dict[int, tuple[str, str, str]], set[int]]:
    """Per location holding a marker, its innermost marker's labels; and the locations
    that are nothing but marker frames.  Other frames inlined beside a marker stay, the
    marker's line leaves them.
    """
    location_labels: dict[int, tuple[str, str, str]] = {}
    whole_markers: set[int] = set()
    for location in profile.location:
        lines = location.line
        if len(lines) == 1:  # as both samplers lay them out: one frame per location
            labels = markers.get(lines[0].function_id)
            if labels is not None:
                location_labels[location.id] = labels
                whole_markers.add(location.id)
            continue
        found = [markers[line.function_id] for line in lines if line.function_id in markers]
        if not found:
            continue
        location_labels[location.id] = found[0]  # line[0] is the innermost
        if len(found) == len(lines):
            whole_markers.add(location.id)
        else:
            kept = [line for line in lines if line.function_id not in markers]
            del lines[:]
            lines.extend(kept)
    return location_labels, whole_markers


def _at(table: list[str], index: int) -> str:
    return table[index] if 0 <= index < len(table) else ""


def _add(sample: Any, strings: _Strings, key: str, value: str) -> None:
    sample.label.add(key=strings.index(key), str=strings.index(value))


def _drop_markers(
    profile: Any, table: list[str], marker_functions: set[int], marker_locations: set[int]
) -> None:
    """Remove the marker locations and functions, and blank the strings only they used.

    No sample refers to a marker location any more, nor any location to a marker
    function.  Their strings become empty rather than leave the table, so that no index
    elsewhere in the profile has to change.
    """
    _remove(profile.location, marker_locations)
    candidates: set[int] = set()
    for function in profile.function:
        if function.id in marker_functions:
            candidates.update((function.name, function.system_name, function.filename))
    _remove(profile.function, marker_functions)
    candidates.discard(0)
    if candidates:
        candidates -= _strings_in_use(profile)
        for index in candidates:
            if 0 <= index < len(table):
                table[index] = ""
    del profile.string_table[:]
    profile.string_table.extend(table)


def _remove(field: Any, ids: set[int]) -> None:
    """Remove the messages of a repeated field whose ``id`` is in ``ids``."""
    for position in range(len(field) - 1, -1, -1):
        if field[position].id in ids:
            del field[position]


def _strings_in_use(profile: Any) -> set[int]:
    """Every string index the profile's remaining messages refer to."""
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
    return used


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
    left_out: list[int] = []
    for position, label in enumerate(labels):
        name = fit_name(label.name)
        if name is None:
            changed = True
            left_out.append(position)
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
    for position in reversed(left_out):
        del labels[position]
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
