"""The terminal summary printed when the program exits: root spans by name, and where the CPU went.

::

    Span profiles: 6 root spans, CPU 1.42 s (1.38 s inside root spans)

      POST /checkout    3 spans   p50 265 ms   p95 268 ms   CPU 630 ms
          600 ms   95%  price_cart  (shop.py)
      ...

Names come from the program, so control characters are shown escaped: a span name
cannot move the cursor or recolour the terminal.
"""

from __future__ import annotations

import os
from typing import Final

from pyrospan_launch.local.aggregate import FunctionTime
from pyrospan_launch.local.views import GroupStats, ProcessStats

MAX_GROUPS: Final = 10
NAME_WIDTH: Final = 60


def printable(text: str, width: int = NAME_WIDTH) -> str:
    """``text`` with control and other unprintable characters escaped, cut to ``width``."""
    shown = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
    return shown if len(shown) <= width else shown[: width - 1] + "…"


def duration(ns: float) -> str:
    """``0.42 ms``, ``265 ms``, ``1.45 s`` or ``123.4 s``."""
    ms = ns / 1e6
    if ms == 0:
        return "0 ms"
    if ms < 1:
        return f"{ms:.2f} ms"
    if ms < 10:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 100_000:
        return f"{ms / 1000:.2f} s"
    return f"{ms / 1000:.1f} s"


def _functions(top: list[FunctionTime], cpu_ns: int) -> list[str]:
    lines = []
    for function in top:
        share = f"{100 * function.self_ns / cpu_ns:.0f}%" if cpu_ns else ""
        where = f"  ({printable(os.path.basename(function.file), 40)})" if function.file else ""
        lines.append(
            f"      {duration(function.self_ns):>9} {share:>5}  {printable(function.name)}{where}"
        )
    return lines


def render(groups: list[GroupStats], process: ProcessStats, total_spans: int) -> str:
    """The summary as text (no trailing newline)."""
    spans = f"{total_spans} root span{'' if total_spans == 1 else 's'}"
    lines = [
        f"Span profiles: {spans}, CPU {duration(process.cpu_ns)} "
        f"({duration(process.in_spans_ns)} inside root spans)",
        "",
    ]
    if not groups:
        lines.append("  no root spans arrived: is the program traced (PYROSPAN_TRACING)?")
    width = min(NAME_WIDTH, max((len(printable(g.name)) for g in groups), default=0))
    for group in groups[:MAX_GROUPS]:
        count = f"{group.count} span{'' if group.count == 1 else 's'}"
        lines.append(
            f"  {printable(group.name):<{width}}  {count:>9}   p50 {duration(group.p50_ns):>8}"
            f"   p95 {duration(group.p95_ns):>8}   CPU {duration(group.cpu_ns):>8}"
        )
        if group.top:
            lines.extend(_functions(group.top, group.cpu_ns))
        else:
            lines.append("      no CPU samples")
    if len(groups) > MAX_GROUPS:
        lines.append(f"  … and {len(groups) - MAX_GROUPS} more span names (see the report)")
    blank = " " * (9 + 3 + 12 + 3 + 12)  # under count, p50 and p95
    lines.append(f"  {'whole process':<{width}}  {blank}   CPU {duration(process.cpu_ns):>8}")
    lines.extend(_functions(process.top, process.cpu_ns))
    return "\n".join(lines)
