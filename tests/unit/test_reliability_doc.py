"""RELIABILITY.md stays true: every test it names exists where it says."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "RELIABILITY.md"
# `tests/file.py::test_name`, or `tests/file.py` alone for a whole file.
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`")
SAME_FILE = re.compile(r"`::(\w+)`")


def referenced() -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    for line in DOC.read_text().splitlines():
        last = None
        for match in REFERENCE.finditer(line):
            last = match[1]
            found.append((match[1], match[2]))
        for match in SAME_FILE.finditer(line):
            assert last is not None, line  # `::name` continues the file named before it
            found.append((last, match[1]))
    return found


def test_every_test_named_in_reliability_md_exists() -> None:
    references = referenced()
    assert len(references) > 15
    for path, name in references:
        source = ROOT / path
        assert source.is_file(), path
        if name is not None:
            assert re.search(rf"^def {name}\(", source.read_text(), re.M), f"{path}::{name}"
