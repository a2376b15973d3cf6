"""Code objects known by identity: a set that never hashes a code object.

CPython keeps no hash of a code object: ``code in some_set`` hashes its whole bytecode
and constants on every lookup (a Flask request's start spent 13 µs on it).  The hot
paths that ask "is this frame's code one of these?" (a root span's start walking its
stack, :func:`~span_markers.hide` walking a traceback) ask by ``id()`` instead.  A
:class:`CodeSet` keeps the codes it was given alive, so no other code object can take
one's address while it is in the set.
"""

from __future__ import annotations

from types import CodeType


class CodeSet:
    """Code objects, kept alive and looked up by identity (``ids`` for loops that test many)."""

    __slots__ = ("_codes", "ids")

    def __init__(self) -> None:
        self._codes: list[CodeType] = []
        self.ids: set[int] = set()

    def add(self, code: CodeType) -> None:
        if id(code) not in self.ids:
            self._codes.append(code)
            self.ids.add(id(code))

    def __contains__(self, code: object) -> bool:
        return id(code) in self.ids

    def __len__(self) -> int:
        return len(self._codes)
