"""A stand-in for pyroscope-io's thread tags, for in-process tests of span labels."""

from __future__ import annotations

import threading


class TagRecorder:
    """Tracks the labels each thread carries, like pyroscope-io's thread tags."""

    def __init__(self) -> None:
        self.by_thread: dict[int, set[tuple[str, str]]] = {}

    def add(self, key: str, value: str) -> None:
        self.by_thread.setdefault(threading.get_ident(), set()).add((key, value))

    def remove(self, key: str, value: str) -> None:
        self.by_thread.setdefault(threading.get_ident(), set()).discard((key, value))

    def current(self) -> dict[str, str]:
        tags = self.by_thread.get(threading.get_ident(), set())
        keys = [k for k, _ in tags]
        assert len(keys) == len(set(keys)), f"a key carries two values: {tags}"
        return dict(tags)
