"""Spans and CPU samples in one SQLite file, written by the receiver's callbacks.

:class:`Store` subscribes to :class:`~pyrospan_launch.receiver.Receiver`'s ``on_spans``
and ``on_profiles`` callbacks (they run on the receiver's handler threads), so one lock
guards one connection.  The file is in WAL mode: ``pyrospan-run --render`` can read it
while ``--serve`` still writes.  Spans and samples are stored independently and joined
by span id when read, because a span's samples may arrive before or after the span.

Only CPU profiles (first sample type in nanoseconds) are kept.  Text from the wire is
cut to a sane length and stacks to a sane depth, so a hostile payload cannot make a
page unreadable or a flame graph too deep to draw.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from pyrospan_launch.local.queries import Queries
from pyrospan_launch.local.records import Frame, Scope, SpanRecord, StoreError
from pyrospan_launch.receiver.records import ProfileSeries, ReceivedSpan
from pyrospan_launch.wire.names import PROFILE_ID_ATTRIBUTE, SPAN_ID

__all__ = [
    "SCHEMA_VERSION",
    "Frame",
    "Scope",
    "SpanRecord",
    "Store",
    "StoreError",
    "is_local_root",
    "open_existing",
]

#: Bumped when the tables change; an older or newer file is refused with a clear line.
SCHEMA_VERSION: Final = "1"
MAX_TEXT: Final = 1000
MAX_LABEL: Final = 200
MAX_STACK_DEPTH: Final = 1000
MAX_ATTRIBUTES: Final = 64


_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS spans (
    span_id TEXT PRIMARY KEY,
    trace_id TEXT NOT NULL,
    parent_span_id TEXT NOT NULL,
    name TEXT NOT NULL,
    service TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    is_root INTEGER NOT NULL,
    status_code INTEGER NOT NULL,
    attributes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS spans_by_root_name ON spans (is_root, name);
CREATE TABLE IF NOT EXISTS profiles (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    service TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    duration_ns INTEGER NOT NULL,
    period INTEGER NOT NULL,
    labels TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stacks (
    id INTEGER PRIMARY KEY,
    frames TEXT NOT NULL UNIQUE,
    leaf TEXT NOT NULL,
    leaf_file TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS samples (
    profile_id INTEGER NOT NULL,
    stack_id INTEGER NOT NULL,
    value INTEGER NOT NULL,
    count INTEGER NOT NULL,
    span_id TEXT NOT NULL,
    labels TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_by_span ON samples (span_id);
"""


def _cut(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _frames_of(series_sample_frames: Sequence[tuple[str, str, int]]) -> list[Frame]:
    frames = [(_cut(name), _cut(file), int(line)) for name, file, line in series_sample_frames]
    if len(frames) > MAX_STACK_DEPTH:
        keep = MAX_STACK_DEPTH // 2
        elided = len(frames) - 2 * keep + 1
        frames = [*frames[:keep], (f"[{elided} frames elided]", "", 0), *frames[-keep + 1 :]]
    return frames


def is_local_root(span: ReceivedSpan) -> bool:
    """A span that starts this process's part of a trace: the spans linked to profiles."""
    return (
        not span.parent_span_id
        or span.parent_is_remote is True
        or PROFILE_ID_ATTRIBUTE in span.attributes
    )


def _attributes_json(attributes: dict[str, object]) -> str:
    kept: dict[str, object] = {}
    for key, value in list(attributes.items())[:MAX_ATTRIBUTES]:
        if isinstance(value, bool | int | float):
            kept[_cut(key, MAX_LABEL)] = value
        else:
            kept[_cut(key, MAX_LABEL)] = _cut(str(value), MAX_LABEL)
    return json.dumps(kept, ensure_ascii=False)


class Store:
    """The SQLite file of one report directory; every method is safe from any thread."""

    def __init__(self, path: Path, *, fresh: bool = False) -> None:
        """Open (or create) ``path``; ``fresh`` deletes what an earlier run left there."""
        self.path = path
        if fresh:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        self._lock = threading.RLock()
        self._version = 0
        self._last_write = time.monotonic()
        self._ignored_profiles = 0
        try:
            self._db = sqlite3.connect(
                str(path), check_same_thread=False, isolation_level=None, timeout=10
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            found = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if found is None:
                self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            elif found[0] != SCHEMA_VERSION:
                raise StoreError(
                    f"{path} was written by another version of pyrospan-run "
                    f"(schema {found[0]}, this one reads {SCHEMA_VERSION})"
                )
            self._stack_ids: dict[str, int] = {
                frames: stack_id
                for stack_id, frames in self._db.execute("SELECT id, frames FROM stacks")
            }
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path} is not a pyrospan-run data file: {exc}") from None
        #: What the page, the summary and the pprof files read.
        self.queries = Queries(self._db, self._lock)

    def close(self) -> None:
        """Close the file (a WAL checkpoint leaves one self-contained file behind)."""
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ writing

    @property
    def version(self) -> int:
        """Goes up with every stored batch, so a page knows when to redraw."""
        return self._version

    @property
    def seconds_since_write(self) -> float:
        """Seconds since data last arrived (or since the store was opened)."""
        return time.monotonic() - self._last_write

    @property
    def ignored_profiles(self) -> int:
        """Profiles that were not CPU profiles (memory profiles), hence not stored."""
        return self._ignored_profiles

    def _touch(self) -> None:
        self._version += 1
        self._last_write = time.monotonic()

    def add_spans(self, spans: list[ReceivedSpan]) -> None:
        """Store decoded spans (an ``on_spans`` callback); a re-sent span replaces itself."""
        rows = [
            (
                span.span_id,
                span.trace_id,
                span.parent_span_id,
                _cut(span.name),
                _cut(str(span.resource.get("service.name", ""))),
                span.start_ns,
                span.end_ns,
                int(is_local_root(span)),
                span.status_code,
                _attributes_json(span.attributes),
            )
            for span in spans
        ]
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO spans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._touch()

    def add_profiles(self, series: list[ProfileSeries]) -> None:
        """Store the samples of decoded CPU profiles (an ``on_profiles`` callback)."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for profile in series:
                    self._add_profile(profile)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._stack_ids = {
                    frames: stack_id
                    for stack_id, frames in self._db.execute("SELECT id, frames FROM stacks")
                }
                raise
            self._touch()

    def _add_profile(self, profile: ProfileSeries) -> None:
        if not profile.sample_types or profile.sample_types[0][1] != "nanoseconds":
            self._ignored_profiles += 1
            return
        labels = {_cut(k, MAX_LABEL): _cut(v, MAX_LABEL) for k, v in profile.labels.items()}
        cursor = self._db.execute(
            "INSERT INTO profiles (received_at, service, time_ns, duration_ns, period, labels) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                time.time(),
                labels.get("service_name", ""),
                profile.time_nanos,
                profile.duration_nanos,
                max(0, profile.period),
                json.dumps(labels, ensure_ascii=False),
            ),
        )
        profile_id = cursor.lastrowid
        period = max(0, profile.period)
        rows = []
        for sample in profile.samples:
            value = sample.values[0] if sample.values else 0
            if value <= 0:
                continue  # negative or zero CPU time is noise, not data
            frames = (
                [(f.name, f.filename, f.line) for f in sample.frames]
                if sample.frames
                else [(name, "", 0) for name in sample.stack]
            )
            sample_labels = {
                _cut(k, MAX_LABEL): _cut(v, MAX_LABEL) for k, v in sample.labels.items()
            }
            rows.append(
                (
                    profile_id,
                    self._stack_id(_frames_of(frames)),
                    value,
                    round(value / period) if period else 1,
                    sample_labels.get(SPAN_ID, ""),
                    json.dumps(sample_labels, ensure_ascii=False),
                )
            )
        self._db.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?)", rows)

    def _stack_id(self, frames: list[Frame]) -> int:
        key = json.dumps(frames, ensure_ascii=False, separators=(",", ":"))
        found = self._stack_ids.get(key)
        if found is not None:
            return found
        leaf, leaf_file = (frames[-1][0], frames[-1][1]) if frames else ("", "")
        cursor = self._db.execute(
            "INSERT INTO stacks (frames, leaf, leaf_file) VALUES (?, ?, ?)",
            (key, leaf, leaf_file),
        )
        stack_id = int(cursor.lastrowid or 0)
        self._stack_ids[key] = stack_id
        return stack_id

    def set_meta(self, **values: str) -> None:
        """Remember facts about the run (command, exit status) for later renders."""
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(values.items()))


def open_existing(path: Path) -> Store:
    """Open a store that must already exist (for ``--render``)."""
    if not path.is_file():
        raise StoreError(f"no span profile data at {path} (written by --local or --serve)")
    return Store(path)
