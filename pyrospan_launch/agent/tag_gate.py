"""Thread tags set while the profiler moves from the Stack sampler to py-spy: held, or said lost.

The move stops pyroscope-io's agent and starts a new one.  A tag set meanwhile is lost:
while no agent runs pyroscope-io drops it (its ``add_thread_tag`` returns False), and a
tag set on the old agent goes with it.  So during the move every thread's tag calls, the
label switch's and the app's own, go through a :class:`TagGate`:

* a call waits for the move to end, at most ``wait`` seconds, and once one wait has
  run out none waits again: the move is slow (a thread that holds the GIL starves it),
  and every tag call of the app would otherwise pay the whole wait;
* a tag added before the new agent runs is lost, and the first such loss is said in one
  line.  A span's labels come back at its thread's next label change; the app's own tags
  only when the app sets them again.  An app that tags its own threads can start on
  py-spy and never move.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pyrospan_launch.common import log

TagFunction = Callable[[str, str], object]

LOST = (
    "profiles: thread tags set while this process moved to py-spy were lost, and stay "
    "so until set again (the move took over {wait:g} s); set PYROSPAN_SAMPLER=pyspy to "
    "start on py-spy"
)


class TagGate:
    """The tag functions of threads during one move; :meth:`opened` once the new agent runs."""

    def __init__(self, wait: float) -> None:
        self.wait = wait
        self._moved = threading.Event()
        self._waited_out = False
        self._quiet = False

    @property
    def moved(self) -> bool:
        """True once the new agent runs (or the move failed)."""
        return self._moved.is_set()

    def opened(self, *, failed: bool = False) -> None:
        """The move is over: calls go through, and tags added from now on are kept.

        ``failed``: no agent runs after all.  Tags are lost then too, but the profiler says
        that it stopped, so the gate says nothing more.
        """
        if failed:
            self._quiet = True
        self._moved.set()

    def wait_for_move(self) -> bool:
        """Wait until the move is over, unless a wait already ran out; True if it is over."""
        if self._moved.is_set():
            return True
        if self._waited_out:
            return False
        if self._moved.wait(self.wait):
            return True
        self._waited_out = True
        return False

    def adding(self, add: TagFunction) -> TagFunction:
        """``add`` for use during the move: after it, or said lost."""

        def add_after_move(key: str, value: str) -> object:
            kept = self.wait_for_move()
            result = add(key, value)
            if not kept:
                self._lost()
            return result

        return add_after_move

    def removing(self, remove: TagFunction) -> TagFunction:
        """``remove`` for use during the move (a tag removed early is no loss)."""

        def remove_after_move(key: str, value: str) -> object:
            self.wait_for_move()
            return remove(key, value)

        return remove_after_move

    def _lost(self) -> None:
        if self._quiet or self._moved.is_set():
            return  # the new agent started meanwhile, or the failure was said
        self._quiet = True
        log.warning(LOST.format(wait=self.wait))
