"""Opening markers: a marker frame around the asyncio task step in which a root span opens.

A root span's own marker wraps the task steps that *begin* inside it (handoff).  The step
in which a task opens its root span began outside any span, so nothing of ours frames the
rest of it: under the Stack sampler, which reads no thread tags, what that step burns
after the span opened is unlabelled.  A queue consumer that opens a span per message and
parses it before its first ``await`` loses that parsing.

An opening marker is made before its span exists.  Once a task of some coroutine function
has burned CPU that way (``LabelSwitch.learn_opening``), every task of that function runs
each step that begins outside any span inside one.  Its frame is named
``pyrospan.span:open<serial>``; when a root span opens in the step, :meth:`OpeningTable.bind`
maps the serial to the span's labels, and the relay reads that map as it rewrites each
push.  An opening whose step opened no span is dropped from stacks and labels nothing.

Binding is refused where the frame would label CPU of something else: when the step had
already run for :data:`PREFIX_LIMIT_S` before the span opened, and for a second root span
in the same step (the first one's binding is withdrawn too).  The rest of the step after
the span ends is labelled with it, as the rest of any step in which a span ends is.

Unlike a span's own marker, an opening's frame does not carry the labels itself, so the
map outlives each span by a few pushes (:meth:`OpeningTable.after_push`).
"""

from __future__ import annotations

import collections
import itertools
import threading
from collections.abc import Callable

from pyrospan_launch.agent.spans.span_markers import PREFIX, make_opening_marker

TYPE_CHECKING = False  # typing is not imported at start-up (docs/design.md)
if TYPE_CHECKING:
    from typing import Any, Protocol

    class RootLabels(Protocol):
        """What an opening reads and sets of a root span's labels (labels.RootLabels)."""

        marker_parts: tuple[str, str, str] | None
        opening: Opening | None


# The name after PREFIX that marks an opening (a span id is 16 hex digits, never this).
OPENING = "open"
_OPENING_PREFIX = PREFIX + OPENING
# Wall seconds a step may have run before its span opened and still be bound to it: what
# ran before is labelled with the span too, less than a tenth of a sample at 100 Hz.
PREFIX_LIMIT_S = 0.001
# Labels of an opening bound to no span: its frame leaves the stack, no label is added.
UNBOUND = ("", "", "")


class Opening:
    """One task's opening marker: made for a step, bound to at most one root span."""

    __slots__ = ("began", "marker", "node", "serial", "spent")

    def __init__(self, serial: int, marker: Callable[..., Any]) -> None:
        self.serial = serial
        self.marker = marker  # marker(coro.send, value), as a span's step marker
        self.began = 0.0  # time.perf_counter() when its current step began
        self.node: RootLabels | None = None  # the root span it is bound to
        # Bound once (even if withdrawn since): its samples may already carry a span, so
        # the task takes a new opening for its next step.
        self.spent = False


class OpeningTable:
    """Which root span each opening marker stands for, kept until the pushes are rewritten."""

    def __init__(self, keep_pushes: int = 3, cap: int = 65536) -> None:
        self._serials = itertools.count(1)
        self._bound: dict[int, tuple[str, str, str]] = {}
        # (push generation when the span ended, serial), oldest first.
        self._retired: collections.deque[tuple[int, int]] = collections.deque()
        self._generation = 0
        self._keep = keep_pushes
        self._cap = cap
        self._lock = threading.Lock()

    def new(self) -> Opening:
        serial = next(self._serials)
        return Opening(serial, make_opening_marker(f"{_OPENING_PREFIX}{serial}"))

    def bind(self, opening: Opening, node: RootLabels, now: float) -> bool:
        """Let ``opening``'s samples carry ``node``'s labels; False when that would mislabel."""
        if opening.spent:
            self.withdraw(opening)  # a second root span in one step: neither is exact
            return False
        parts = node.marker_parts
        if parts is None or now - opening.began > PREFIX_LIMIT_S:
            return False
        with self._lock:
            self._bound[opening.serial] = parts
            while len(self._bound) > self._cap:  # no push for a long while: oldest go
                del self._bound[next(iter(self._bound))]
        opening.node = node
        opening.spent = True
        node.opening = opening
        return True

    def withdraw(self, opening: Opening) -> None:
        """``opening`` labels nothing any more (samples not yet pushed stay unlabelled)."""
        node, opening.node = opening.node, None
        if node is not None:
            node.opening = None
            with self._lock:
                self._bound.pop(opening.serial, None)

    def retire(self, opening: Opening) -> None:
        """Its span ended: forget it once the pushes that may hold its samples are rewritten."""
        self._retired.append((self._generation, opening.serial))

    def labels(self, name: str) -> tuple[str, str, str] | None:
        """``(span_id, span_name, trace_id)`` of an opening's frame name; None if not one."""
        if not name.startswith(_OPENING_PREFIX):
            return None
        try:
            serial = int(name[len(_OPENING_PREFIX) :])
        except ValueError:
            return None
        return self._bound.get(serial, UNBOUND)

    def after_push(self) -> None:
        """A push was rewritten: drop the spans that ended some pushes ago."""
        with self._lock:
            self._generation += 1
            last = self._generation - self._keep
            retired = self._retired
            while retired and retired[0][0] <= last:
                _, serial = retired.popleft()
                self._bound.pop(serial, None)

    def __len__(self) -> int:
        return len(self._bound)


# One per process, as the relay that reads it is: openings are bound wherever a task opens
# a root span, far from the relay's threads.
OPENINGS = OpeningTable()
