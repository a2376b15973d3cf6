"""Which CPU sampler runs and how root spans reach its samples: one value, chosen once.

pyroscope-io has two CPU samplers.  py-spy reads a thread's stack from another thread
while the thread runs on; on deep stacks a task switch during the read glues the leaf
of one span's step to the root of another's, and a runnable thread waiting for a core
counts as on-CPU.  The Stack sampler stops each thread with its own CPU timer (CPython
3.12+ on Linux) and reads the stack there: exact at any depth, and only CPU time is
counted.  Before 3.12 it reads stacks from a wall-clock loop, still measured far more
exact than py-spy at depth.  It reads no thread tags.

:func:`choose` turns ``PYROSPAN_SAMPLER`` (auto, stack, pyspy) and the span-label method
into a :class:`Sampling`, with the reason for the choice; the agent holds it, ``--info``
shows it, and the profiler changes it only to move a process to py-spy, with a reason.
See docs/design.md, "The sampler".
"""

from __future__ import annotations

import sys

AUTO = "auto"
STACK = "stack"
PYSPY = "pyspy"
FRAMES = "frames"
TAGS = "tags"

# The first CPython whose Stack sampler has per-thread CPU timers (pyroscope-io's
# configure_experimental_stack_profiler docstring); before it, a wall-clock loop.
CPU_TIMERS = (3, 12)
# What the wall-clock loop costs span profiles, said with the choice: it reads a running
# thread's stack, and a coroutine frame that suspends meanwhile ends the walk short of the
# marker (README "Before Python 3.12", measured with pyroscope-io too: about 2 to 11% of the
# CPU of asyncio work 60 frames deep stays unlabelled, never wrongly labelled).
_TORN = "deep asyncio stacks lose a few % of their span labels (3.12+ reads them whole)"


class Sampling:
    """The CPU sampler of this process and how root spans reach its samples.

    ``sampler`` is STACK or PYSPY, ``labels`` FRAMES (marker frames read with the stack)
    or TAGS (thread tags); ``asked`` is what PYROSPAN_SAMPLER said and ``reason`` why
    ``sampler`` was taken, in words for ``--info`` and the log.
    """

    __slots__ = ("asked", "labels", "reason", "sampler")

    def __init__(self, sampler: str, labels: str, asked: str, reason: str) -> None:
        self.sampler = sampler
        self.labels = labels
        self.asked = asked
        self.reason = reason

    @property
    def stack(self) -> bool:
        """True when the Stack sampler runs."""
        return self.sampler == STACK

    @property
    def frames(self) -> bool:
        """True when root spans run inside marker frames that the sampler reads."""
        return self.labels == FRAMES

    @property
    def automatic(self) -> bool:
        """True when pyrospan-run chose the sampler (PYROSPAN_SAMPLER=auto)."""
        return self.asked == AUTO

    def on_pyspy(self, reason: str) -> Sampling:
        """The same labels, sampled by py-spy from now on, for ``reason``."""
        return Sampling(PYSPY, self.labels, self.asked, reason)

    def with_tags(self, reason: str) -> Sampling:
        """Thread tags instead of marker frames (the relay is gone): py-spy reads them."""
        return Sampling(PYSPY, TAGS, self.asked, reason)

    def describe(self) -> str:
        """``stack (auto: ...)``: the sampler and why, for one line."""
        name = "Stack" if self.stack else "py-spy"
        how = "auto" if self.automatic else f"PYROSPAN_SAMPLER={self.asked}"
        return f"{name} ({how}: {self.reason})"

    def __repr__(self) -> str:
        return f"Sampling({self.sampler!r}, {self.labels!r}, {self.asked!r}, {self.reason!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sampling):
            return NotImplemented
        return (self.sampler, self.labels, self.asked) == (
            other.sampler,
            other.labels,
            other.asked,
        )

    def __hash__(self) -> int:
        return hash((self.sampler, self.labels, self.asked))


def choose(
    asked: str,
    labels: str,
    *,
    tracing: bool = True,
    oncpu: bool = True,
    python: tuple[int, int] | None = None,
) -> Sampling:
    """The sampler for PYROSPAN_SAMPLER=``asked`` and span labels ``labels``.

    Marker frames need tracing (no span, no marker), so without it labels are tags.
    ``auto`` takes Stack for CPU profiles with marker frames: with CPU timers from 3.12,
    and before that its wall-clock loop, which on 3.10 and 3.11 was measured exact at 60
    frames where py-spy mislabelled (pool precision 99.2% and 100% against py-spy's 56%
    and 21%), and which counted CPU as CPU beside two hogs (0.996 and 0.994 against
    3.66 and 2.76).  It takes py-spy where Stack cannot serve: for thread tags and
    wall-clock profiles (it reads no tags and counts CPU only).  An explicit ``stack`` is
    kept except with thread tags, which it would lose entirely, and wall-clock profiles,
    which it refuses to start for.  What only a running process can tell (a forked child
    without CPU timers, uWSGI's request threads, an app's own signal handlers) moves it
    to py-spy later (agent/profiler).
    """
    version = python or (sys.version_info[0], sys.version_info[1])
    if not tracing:
        labels = TAGS
    if asked == PYSPY:
        return Sampling(PYSPY, labels, asked, "as asked")
    if labels == TAGS:
        why = (
            "span labels are thread tags (PYROSPAN_SPAN_LABELS=tags), which only py-spy reads"
            if tracing
            else "tracing is off: only the app's own thread tags label samples; py-spy reads them"
        )
        return Sampling(PYSPY, labels, asked, why)
    if not oncpu:
        # configure() refuses the Stack sampler for wall-clock profiles (measured: it
        # returns False with oncpu=False).
        return Sampling(
            PYSPY,
            labels,
            asked,
            "wall-clock profiles (PYROSCOPE_ONCPU=false) come from py-spy: "
            "the Stack sampler counts CPU time only",
        )
    if asked == STACK:
        if version < CPU_TIMERS:
            return Sampling(
                STACK, labels, asked, f"as asked; wall-clock loop before CPython 3.12; {_TORN}"
            )
        return Sampling(STACK, labels, asked, "as asked")
    shown = f"CPython {version[0]}.{version[1]}"
    if version < CPU_TIMERS:
        return Sampling(
            STACK,
            labels,
            asked,
            f"{shown}: its wall-clock loop, exact at depth where py-spy mislabels; {_TORN}",
        )
    return Sampling(STACK, labels, asked, f"{shown} has per-thread CPU timers")
