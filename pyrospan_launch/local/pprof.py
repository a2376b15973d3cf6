"""Write span profiles as gzip-compressed pprof files (``go tool pprof``, Pyroscope, Speedscope).

Each file is a ``perftools.profiles.Profile`` built with the runtime protobuf classes of
:mod:`pyrospan_launch.wire.schemas`: one ``cpu``/``nanoseconds`` sample type, like the
profiles pyroscope-io sends, and the ``span_id`` and ``span_name`` labels on every
sample, so a span's file carries the same identity as its samples in Pyroscope (and fits
the same limits: :mod:`pyrospan_launch.settings.label_limits`).
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pyrospan_launch.local.store import Frame, Scope, SpanRecord, Store
from pyrospan_launch.settings.label_limits import fit_name, fit_value
from pyrospan_launch.wire import schemas
from pyrospan_launch.wire.names import SPAN_ID, SPAN_NAME

PPROF_DIR: Final = "pprof"
PROCESS_FILE: Final = "process.pb.gz"
#: At most this many span files per report (the spans with the most CPU).
MAX_SPAN_FILES: Final = 1000


class _Strings:
    """A pprof string table: index 0 is always the empty string."""

    def __init__(self) -> None:
        self.table: list[str] = [""]
        self._index: dict[str, int] = {"": 0}

    def __call__(self, text: str) -> int:
        found = self._index.get(text)
        if found is None:
            found = self._index[text] = len(self.table)
            self.table.append(text)
        return found


def build_profile(
    stacks: Iterable[tuple[Sequence[Frame], int]],
    *,
    period: int,
    time_ns: int = 0,
    duration_ns: int = 0,
    labels: Mapping[str, str] | None = None,
) -> bytes:
    """A gzip-compressed pprof profile of ``stacks`` (root first) with CPU nanoseconds."""
    strings = _Strings()
    profile = schemas.Profile()
    profile.sample_type.add(type=strings("cpu"), unit=strings("nanoseconds"))
    profile.period_type.type = strings("cpu")
    profile.period_type.unit = strings("nanoseconds")
    profile.period = period
    profile.time_nanos = time_ns
    profile.duration_nanos = duration_ns
    functions: dict[tuple[str, str], int] = {}
    locations: dict[tuple[int, int], int] = {}
    label_ids = []
    for label_name, label_value in (labels or {}).items():
        fitted = fit_name(label_name)
        if fitted is not None:
            label_ids.append((strings(fitted), strings(fit_value(label_value))))
    for frames, value in stacks:
        location_ids: list[int] = []
        for name, file, line in frames:
            function_id = functions.get((name, file))
            if function_id is None:
                function_id = functions[(name, file)] = len(functions) + 1
                # No system_name: pprof demangles a function whose system_name equals its
                # name, and its C++ heuristics strip "<...>", which blanks Python's
                # <module>, <lambda>, <listcomp> and <genexpr> (pyroscope-io sets none).
                profile.function.add(id=function_id, name=strings(name), filename=strings(file))
            location_id = locations.get((function_id, line))
            if location_id is None:
                location_id = locations[(function_id, line)] = len(locations) + 1
                location = profile.location.add(id=location_id)
                location.line.add(function_id=function_id, line=line)
            location_ids.append(location_id)
        sample = profile.sample.add()
        sample.location_id.extend(reversed(location_ids))  # pprof lists the leaf first
        sample.value.append(value)
        for key, text in label_ids:
            sample.label.add(key=key, str=text)
    profile.string_table.extend(strings.table)
    return gzip.compress(profile.SerializeToString(), mtime=0)


def span_file_name(span: SpanRecord) -> str:
    """``<name as safe characters>-<span id>.pb.gz``: readable and unique per span."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", span.name).strip("._-")[:40] or "span"
    span_id = re.sub(r"[^0-9a-f]", "", span.span_id.lower())[:16] or "0"
    return f"{slug}-{span_id}.pb.gz"


@dataclass(frozen=True)
class PprofFiles:
    """What :func:`write_all` wrote."""

    directory: Path
    spans_written: int
    spans_left_out: int


def write_all(store: Store, report_dir: Path, *, limit: int = MAX_SPAN_FILES) -> PprofFiles:
    """One file per root span with samples (the ``limit`` busiest) and one for the process.

    Files this function wrote before are replaced; nothing else in the directory is touched.
    """
    directory = report_dir / PPROF_DIR
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.pb.gz"):
        old.unlink()
    period = store.queries.period()
    process = store.queries.stack_values(Scope("process"))
    (directory / PROCESS_FILE).write_bytes(build_profile(process, period=period))
    cpu = store.queries.cpu_by_span()
    spans = [span for span in store.queries.root_spans() if cpu.get(span.span_id, (0, 0))[0] > 0]
    spans.sort(key=lambda span: (-cpu[span.span_id][0], span.span_id))
    for span in spans[:limit]:
        data = build_profile(
            store.queries.stack_values(Scope("span", span.span_id)),
            period=period,
            time_ns=span.start_ns,
            duration_ns=span.duration_ns,
            labels={SPAN_ID: span.span_id, SPAN_NAME: span.name},
        )
        (directory / span_file_name(span)).write_bytes(data)
    return PprofFiles(directory, min(len(spans), limit), max(0, len(spans) - limit))
