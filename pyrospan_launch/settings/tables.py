"""The README's configuration tables, written from the registry so they cannot drift."""

from __future__ import annotations

from pyrospan_launch.settings.registry import ALL, Setting

# README.md holds exactly :func:`markdown` between these two lines.
BEGIN = "<!-- settings tables: written by `python -m pyrospan_launch.settings` -->"
END = "<!-- end of settings tables -->"


def _default(setting: Setting) -> str:
    if setting.default in (None, "", frozenset()):
        return "—"
    return setting.default_text()


def markdown() -> str:
    """One table per group of settings, in registry order."""
    lines: list[str] = []
    group = ""
    for setting in ALL:
        if setting.group != group:
            group = setting.group
            if lines:
                lines.append("")
            lines += [
                f"**{group}**",
                "",
                "| variable | default | accepted | what it does |",
                "|---|---|---|---|",
            ]
        lines.append(
            f"| `{setting.name}` | {_default(setting)} | {setting.expected} | {setting.doc} |"
        )
    return "\n".join(lines) + "\n"
