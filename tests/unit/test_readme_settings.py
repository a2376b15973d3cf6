"""README's configuration tables are exactly what ``python -m pyrospan_launch.settings`` prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyrospan_launch.settings import registry, tables

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_tables() -> str:
    text = README.read_text(encoding="utf-8")
    assert text.count(tables.BEGIN) == 1 and text.count(tables.END) == 1
    inside = text.split(tables.BEGIN, 1)[1].split(tables.END, 1)[0]
    return inside.strip("\n") + "\n"


def test_readme_holds_the_tables_the_registry_writes() -> None:
    # On failure: python -m pyrospan_launch.settings, and paste its output between the markers.
    assert _readme_tables() == tables.markdown()


def test_every_setting_has_one_row() -> None:
    rows = [line for line in tables.markdown().splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [s.name for s in registry.ALL]


def test_a_changed_doc_line_makes_the_readme_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    first = registry.ALL[0]
    changed = (first._replace(doc="Something else."), *registry.ALL[1:])
    monkeypatch.setattr(tables, "ALL", changed)
    assert "| Something else. |" in tables.markdown()
    assert _readme_tables() != tables.markdown()
