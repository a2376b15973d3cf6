"""The profiler's labels of each thread, switched to the root span of the context running on it.

pyroscope-io labels samples per OS thread (``add_thread_tag`` / ``remove_thread_tag`` act
on the calling thread).  :class:`LabelSwitch` keeps, for each thread, which root span's
labels it shows, and changes them with as few calls as possible.  This module imports
no OpenTelemetry code, so the profiler can start before the SDK.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from types import CodeType

from pyrospan_launch.agent.spans.code_set import CodeSet
from pyrospan_launch.common import log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrospan_launch.agent.spans.openings import Opening

Labels = tuple[tuple[str, str], ...]
# CPU milliseconds (two samples at the default 100 Hz) a task step may burn after opening
# a root span, outside any marker, before that is said (LabelSwitch.opening_step_ended).
OPENING_NOTABLE_MS = 20.0
# CPU milliseconds the tasks of one coroutine function may burn that way, in all, before
# their steps run inside opening markers (spans/openings): each costs a marker per span.
OPENING_LEARN_MS = 1.0
# Coroutine functions counted towards that at once, at most.
_OPENING_CANDIDATES = 4096
TagFunction = Callable[[str, str], object]
Marker = Callable[..., object]


class RootLabels:
    """The profiler labels of one local root span, shared by its whole span tree.

    ``labels`` are (key, value) pairs with ``span_id`` last: thread tags are added in
    this order and removed in the reverse one, so no sample sees a span_id alone.
    """

    __slots__ = (
        "active",
        "async_marker",
        "awaited_in",
        "labels",
        "marker",
        "marker_parts",
        "opened_cpu",
        "opening",
        "span_id",
        "step_marker",
    )

    def __init__(
        self,
        labels: Labels,
        span_id: int = 0,
        marker_parts: tuple[str, str, str] | None = None,
    ) -> None:
        self.labels = labels
        self.span_id = span_id  # the root span's own id, to tell it from its children
        self.active = True
        # What the span's marker frame names, (span id, span name, trace id) in hex, or
        # None when labels are thread tags.  The marker functions themselves are made on
        # first use (span_markers.marker_of): a root span served on a plain thread never
        # runs inside one, and making one costs more than the rest of on_start.
        self.marker_parts = marker_parts
        self.marker: Marker | None = None
        self.async_marker: Marker | None = None
        self.step_marker: Marker | None = None  # asyncio task steps: f(value), no *args
        # The task coroutine (task_steps.LabelledCoroutine) whose await chain holds this span's
        # async marker now (asgi_frames): its steps run inside that marker already.
        self.awaited_in: object | None = None
        # The thread's CPU time (s) when the span opened inside an asyncio task step that
        # runs in no marker, watched under the Stack sampler: what that step burns from
        # here to its end has no marker frame (LabelSwitch.opening_step_ended).
        self.opened_cpu: float | None = None
        # The opening marker (spans/openings) the step that opened the span runs in, when
        # one was bound to it: that step's samples carry the span.
        self.opening: Opening | None = None


# The root span labels of the running context.  Being a ContextVar, it travels with
# asyncio tasks and copied contexts exactly as OpenTelemetry's own context does; it is
# updated together with it (span_context) so the two always agree.
CURRENT: ContextVar[RootLabels | None] = ContextVar("pyrospan_root_labels", default=None)


class ThreadLabels:
    """One thread's labels: the root span its samples belong to, and how they are shown."""

    __slots__ = ("framed", "node", "opening", "sampled", "tagged")

    def __init__(self) -> None:
        self.node: RootLabels | None = None  # the root span this thread's samples belong to now
        self.tagged: RootLabels | None = None  # the root span whose labels are thread tags
        self.framed: RootLabels | None = None  # the root span whose marker frame runs (innermost)
        # The opening marker (spans/openings.Opening) the running task step runs in, if any.
        self.opening: Opening | None = None
        # True once the sampler is known to sample this thread (Profiler.see_current_thread
        # said so at the thread's first root span): later root spans need not ask.
        self.sampled = False


class PerThread(threading.local):
    """Each thread's :class:`ThreadLabels`, as ``.labels``.

    One ``threading.local`` read finds them; the rest are plain slot reads.  Every
    attribute of a ``threading.local`` costs a lookup of the calling thread's dictionary,
    and an asyncio task step reads and writes the thread's labels about ten times.
    """

    def __init__(self) -> None:
        self.labels = ThreadLabels()


class LabelSwitch:
    """Sets the profiler's labels of the calling thread; at most one root span at a time."""

    def __init__(
        self, add_tag: TagFunction, remove_tag: TagFunction, *, frames: bool = False
    ) -> None:
        self._add_tag = add_tag
        self._remove_tag = remove_tag
        # Each thread's labels: ``per_thread.labels`` are the calling thread's.  Keep this
        # object, not ``.labels``, in what more than one thread may call.
        self._threads = self.per_thread = PerThread()
        # False while the sampler reads no thread tags (the Stack sampler): each thread's
        # root span is still tracked, but no tag is set that nobody would read.  Two tag
        # calls each way cost every root span several microseconds (benchmarks/span_cost).
        # Set by the profiler; on a move to py-spy each thread's tags are set at its next
        # label change (the calling thread's at once: reapply).
        self.tags_read = True
        # True when root spans get marker frames: a copy of the agent's Sampling.frames,
        # kept here for the hot paths and set by the profiler whenever that changes.
        self.frames = frames
        # The code objects of the calls under which a server's root span starts and its
        # work then runs in the span's marker (server_frames): a root span started below
        # one of them is labelled by the sampler whichever sampler runs.
        self.framing_entries = CodeSet()
        # Called once span linking starts: the relay loads what rewriting markers needs.
        self.warm_up: Callable[[], None] | None = None
        # True while the sampler reads each stack whole, in its thread's own CPU-timer
        # signal (the Stack sampler on 3.12+); set by the profiler.  A sampler that reads
        # a running thread's stack from outside (py-spy, the wall-clock loop) can cut it
        # short and lose a marker near the root: markers near the leaf serve that case.
        self._whole_stacks = False
        self._when_torn: list[Callable[[], None]] = []
        # Called with a root span and the CPU milliseconds the asyncio task step that
        # opened it burned afterwards, outside any marker, when that is long enough to
        # lose samples; None when that does not matter (py-spy reads thread tags, or it
        # was said).  Set by the bootstrap under the Stack sampler.
        self.unmarked_opening: Callable[[RootLabels, float], object] | None = None
        # True when tasks that open root spans get opening markers (the Stack sampler with
        # marker frames; set by the bootstrap).  opening_codes: the coroutine functions
        # whose tasks run each step that begins outside any span inside one.
        self.openings = False
        self.opening_codes = CodeSet()
        self._opening_ms: dict[int, float] = {}  # per coroutine code id, until learned

    def opening_step_ended(self, node: RootLabels, *, say: bool = True) -> bool:
        """The task step that opened ``node``'s span ended (or the span did), in no marker.

        Samples of that step after the span opened carry no marker frame: only a thread
        tag names the span there, and the Stack sampler reads none.  The next steps of the
        task run inside the marker (handoff).  The task's coroutine function learns to run
        its next tasks' opening steps in opening markers; a loss that learning cannot
        prevent is said (``say``) when it is two samples' worth.  True when it was learned
        just now: this loss, the function's first, is not said.
        """
        opened, node.opened_cpu = node.opened_cpu, None
        if opened is None:
            return False
        ms = (time.thread_time() - opened) * 1000
        learned = self.openings and self._learn_opening(ms)
        said = self.unmarked_opening
        if say and not learned and said is not None and ms >= OPENING_NOTABLE_MS:
            said(node, ms)
        return learned

    def _learn_opening(self, ms: float) -> bool:
        """Count ``ms`` against the running task's coroutine function; True once learned."""
        code = _running_task_code()
        if code is None or code in self.opening_codes:
            return False
        key = id(code)
        spent = self._opening_ms.get(key, 0.0) + ms
        if spent < OPENING_LEARN_MS:
            if len(self._opening_ms) >= _OPENING_CANDIDATES:
                self._opening_ms.clear()  # many functions made at run time: start over
            self._opening_ms[key] = spent
            return False
        self._opening_ms.pop(key, None)
        self.opening_codes.add(code)
        name = getattr(code, "co_qualname", code.co_name)
        log.debug(
            f"span labels: tasks of {name} ({code.co_filename}:{code.co_firstlineno}) burned "
            f"{spent:.1f} ms of CPU after opening a root span, before their next await; "
            "their steps that begin outside any span run inside opening markers from now on"
        )
        return True

    def set_whole_stacks(self, whole: bool) -> None:
        """The sampler reads whole stacks now, or not; leaf markers put off apply if not."""
        self._whole_stacks = whole
        if not whole:
            waiting, self._when_torn = self._when_torn, []
            for apply in waiting:
                apply()

    def when_stacks_can_tear(self, apply: Callable[[], None]) -> None:
        """``apply()`` now, or once the sampler can cut stacks short (a move to py-spy)."""
        if self._whole_stacks:
            self._when_torn.append(apply)
        else:
            apply()

    def tag_functions(self) -> tuple[TagFunction, TagFunction]:
        """The functions that set and unset thread tags now."""
        return self._add_tag, self._remove_tag

    def retarget(self, add_tag: TagFunction, remove_tag: TagFunction) -> None:
        """Set thread tags through these functions from now on (a new native module)."""
        self._add_tag = add_tag
        self._remove_tag = remove_tag

    def shown(self) -> RootLabels | None:
        """The root span this thread's samples are labelled with now."""
        node: RootLabels | None = self._threads.labels.node
        return node

    def show(self, node: RootLabels | None) -> None:
        """Label this thread's samples with ``node`` (nothing for None or an ended span).

        Inside that span's own marker frame the frame labels the samples: no thread tag.
        """
        local = self._threads.labels
        if node is not None and not node.active:
            node = None
        if local.node is node:
            return
        local.node = node
        if not self.tags_read:
            return
        # Inlined, not a call to _tag: this runs on every context change of the app.
        tag = None if node is local.framed else node
        current: RootLabels | None = local.tagged
        if current is tag:
            return
        if current is not None:
            for key, value in reversed(current.labels):
                self._remove_tag(key, value)
        if tag is not None:
            for key, value in tag.labels:
                self._add_tag(key, value)
        local.tagged = tag

    def restore(self, node: RootLabels | None) -> None:
        """After a marker frame ended: show ``node`` again, tags set as they must be now."""
        local = self._threads.labels
        if node is not None and not node.active:
            node = None
        local.node = node
        if self.tags_read:
            self._tag(None if node is local.framed else node)

    def _tag(self, node: RootLabels | None) -> None:
        local = self._threads.labels
        current: RootLabels | None = local.tagged
        if current is node:
            return
        if current is not None:
            for key, value in reversed(current.labels):
                self._remove_tag(key, value)
        if node is not None:
            for key, value in node.labels:
                self._add_tag(key, value)
        local.tagged = node

    def reapply(self) -> None:
        """Set this thread's labels again, after the profiler itself was restarted."""
        node = self.shown()
        local = self._threads.labels
        local.node = None
        local.tagged = None
        self.show(node)


def _running_task_code() -> CodeType | None:
    """The code of the coroutine function of the asyncio task running on this thread."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return None
    try:
        task = asyncio.current_task()
        code = getattr(task.get_coro(), "cr_code", None) if task is not None else None
    except Exception:  # no running loop, or a loop's own task class without get_coro()
        return None
    return code if isinstance(code, CodeType) else None
