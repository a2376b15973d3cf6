"""Reading the local store: root spans, CPU by span and by name, stacks of a scope.

The page, the summary and the pprof files read through :class:`Queries` (a store's
``queries``); :class:`~pyrospan_launch.local.store.Store` keeps the file and writes what
the receiver's callbacks hand it.  Both share the store's connection and lock.
"""

from __future__ import annotations

import json
import sqlite3
import threading

from pyrospan_launch.local.records import Frame, Scope, SpanRecord


class Queries:
    """Reads of one store's file; every method takes the store's lock."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock) -> None:
        self._db = db
        self._lock = lock
        # Stacks are never rewritten once stored, so their frames are cached for good.
        self._frames_cache: dict[int, tuple[Frame, ...]] = {}

    def meta(self) -> dict[str, str]:
        """Everything :meth:`Store.set_meta` stored."""
        with self._lock:
            return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def services(self) -> list[str]:
        """Service names seen in spans or profiles, sorted."""
        with self._lock:
            rows = self._db.execute(
                "SELECT service FROM spans WHERE service != '' UNION "
                "SELECT service FROM profiles WHERE service != ''"
            ).fetchall()
        return sorted(row[0] for row in rows)

    def root_span_count(self) -> int:
        """How many root spans are stored."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM spans WHERE is_root").fetchone()[0])

    def root_spans(self, limit: int | None = None) -> list[SpanRecord]:
        """Root spans, the latest first (at most ``limit``)."""
        query = (
            "SELECT span_id, trace_id, name, service, start_ns, end_ns, status_code "
            "FROM spans WHERE is_root ORDER BY start_ns DESC, span_id"
        )
        with self._lock:
            if limit is None:
                rows = self._db.execute(query).fetchall()
            else:
                rows = self._db.execute(query + " LIMIT ?", (limit,)).fetchall()
        return [SpanRecord(*row) for row in rows]

    def root_span(self, span_id: str) -> SpanRecord | None:
        """The root span with this id, if stored."""
        with self._lock:
            row = self._db.execute(
                "SELECT span_id, trace_id, name, service, start_ns, end_ns, status_code "
                "FROM spans WHERE is_root AND span_id = ?",
                (span_id,),
            ).fetchone()
        return SpanRecord(*row) if row else None

    def count_named(self, name: str) -> int:
        """How many root spans are called ``name``."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM spans WHERE is_root AND name = ?", (name,)
            ).fetchone()
        return int(row[0])

    def durations_by_name(self) -> dict[str, list[int]]:
        """Every root span's duration (ns), grouped by span name."""
        groups: dict[str, list[int]] = {}
        with self._lock:
            rows = self._db.execute(
                "SELECT name, MAX(0, end_ns - start_ns) FROM spans WHERE is_root"
            ).fetchall()
        for name, duration in rows:
            groups.setdefault(name, []).append(int(duration))
        return groups

    def cpu_by_span(self) -> dict[str, tuple[int, int]]:
        """Per span id: (CPU nanoseconds, sample count) of the samples labelled with it."""
        with self._lock:
            rows = self._db.execute(
                "SELECT span_id, SUM(value), SUM(count) FROM samples "
                "WHERE span_id != '' GROUP BY span_id"
            ).fetchall()
        return {span_id: (int(cpu), int(count)) for span_id, cpu, count in rows}

    def cpu_by_name(self) -> dict[str, tuple[int, int]]:
        """Per root span name: (CPU nanoseconds, sample count) of its spans' samples."""
        with self._lock:
            rows = self._db.execute(
                "SELECT p.name, SUM(s.value), SUM(s.count) FROM samples s "
                "JOIN spans p ON p.span_id = s.span_id WHERE p.is_root GROUP BY p.name"
            ).fetchall()
        return {name: (int(cpu), int(count)) for name, cpu, count in rows}

    def cpu_total(self) -> tuple[int, int]:
        """(CPU nanoseconds, sample count) of every stored sample."""
        with self._lock:
            cpu, count = self._db.execute(
                "SELECT COALESCE(SUM(value), 0), COALESCE(SUM(count), 0) FROM samples"
            ).fetchone()
        return int(cpu), int(count)

    def self_time_by_name(self) -> dict[str, list[tuple[str, str, int]]]:
        """Per root span name: (function, file, self CPU ns) of its leaf functions."""
        with self._lock:
            rows = self._db.execute(
                "SELECT p.name, st.leaf, st.leaf_file, SUM(s.value) FROM samples s "
                "JOIN spans p ON p.span_id = s.span_id JOIN stacks st ON st.id = s.stack_id "
                "WHERE p.is_root GROUP BY p.name, st.leaf, st.leaf_file"
            ).fetchall()
        groups: dict[str, list[tuple[str, str, int]]] = {}
        for name, leaf, leaf_file, cpu in rows:
            groups.setdefault(name, []).append((leaf, leaf_file, int(cpu)))
        return groups

    def self_time(self, scope: Scope) -> list[tuple[str, str, int]]:
        """(function, file, self CPU ns) of the leaf functions in ``scope``."""
        where, params = self._where(scope)
        with self._lock:
            rows = self._db.execute(
                "SELECT st.leaf, st.leaf_file, SUM(s.value) FROM samples s "
                "JOIN stacks st ON st.id = s.stack_id " + where + " GROUP BY st.leaf, st.leaf_file",
                params,
            ).fetchall()
        return [(leaf, leaf_file, int(cpu)) for leaf, leaf_file, cpu in rows]

    def stack_values(self, scope: Scope) -> list[tuple[tuple[Frame, ...], int]]:
        """Every distinct stack in ``scope`` (root first) with its CPU nanoseconds."""
        where, params = self._where(scope)
        with self._lock:
            rows = self._db.execute(
                "SELECT s.stack_id, SUM(s.value) FROM samples s " + where + " GROUP BY s.stack_id",
                params,
            ).fetchall()
            return [(self._frames(stack_id), int(value)) for stack_id, value in rows]

    def period(self) -> int:
        """The most common sampling period (ns) of the stored profiles; 10 ms if none."""
        with self._lock:
            row = self._db.execute(
                "SELECT period FROM profiles WHERE period > 0 "
                "GROUP BY period ORDER BY COUNT(*) DESC LIMIT 1"
            ).fetchone()
        return int(row[0]) if row else 10_000_000

    def _frames(self, stack_id: int) -> tuple[Frame, ...]:
        cached = self._frames_cache.get(stack_id)
        if cached is None:
            (raw,) = self._db.execute(
                "SELECT frames FROM stacks WHERE id = ?", (stack_id,)
            ).fetchone()
            cached = tuple((str(n), str(f), int(line)) for n, f, line in json.loads(raw))
            self._frames_cache[stack_id] = cached
        return cached

    @staticmethod
    def _where(scope: Scope) -> tuple[str, tuple[str, ...]]:
        if scope.kind == "span":
            return "WHERE s.span_id = ?", (scope.key,)
        if scope.kind == "name":
            return (
                "JOIN spans p ON p.span_id = s.span_id WHERE p.is_root AND p.name = ?",
                (scope.key,),
            )
        return "", ()
