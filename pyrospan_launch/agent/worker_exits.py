"""Send the last data of forked pool workers, which end through ``os._exit`` and skip atexit.

* A multiprocessing child (fork and forkserver start methods) clears the finalizers it
  inherited, runs the "after fork" callbacks of ``multiprocessing.util``, runs its target,
  runs its finalizers and leaves through ``os._exit``.  An after-fork callback registered
  in the child, before that, adds a finalizer of ours after the clearing.  billiard
  (celery's fork of multiprocessing) uses the same registries.
* A celery prefork worker process ends in billiard's pool loop, also through ``os._exit``
  but without finalizers; celery sends its ``worker_process_shutdown`` signal just before,
  and a receiver of ours flushes then.

Both run :meth:`Lifecycle.flush_at_exit`, so the deadline and the once-per-process rule
hold.  Nothing here imports multiprocessing or celery: a child is armed only with what
its parent had loaded when it forked.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from pyrospan_launch.agent.lifecycle import Lifecycle

# typing for type checkers only: importing it costs every process milliseconds at start-up
# (docs/design.md, start-up imports).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MULTIPROCESSING_UTILS = ("multiprocessing.util", "billiard.util")
CELERY_RECEIVER_UID = "pyrospan-run: send the last spans and profiles"

# Lowest priority: after the app's own finalizers and the ends of its own children.
FINALIZER_PRIORITY = -100


# The after-fork registries armed (billiard's is multiprocessing's); a forked child
# inherits both this set and the registries' entries.
class WorkerExits:
    """Arms the children this process forks to flush through ``lifecycle`` as pool workers."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self._lifecycle = lifecycle
        self._armed: set[int] = set()
        self._installed = False

    def _finalizer_registrar(self, util: Any) -> Callable[[object], None]:
        flush = self._lifecycle.flush_at_exit

        def register_finalizer(_anchor: object) -> None:
            util.Finalize(None, flush, exitpriority=FINALIZER_PRIORITY)

        return register_finalizer

    def _on_celery_worker_process_shutdown(self, **_: object) -> None:
        self._lifecycle.flush_at_exit()

    def _arm(self) -> None:
        for name in MULTIPROCESSING_UTILS:
            register = getattr(sys.modules.get(name), "register_after_fork", None)
            if register is None or id(register) in self._armed:
                continue
            # The registry keeps its entry while its object lives: this one lives with us.
            register(self, self._finalizer_registrar(sys.modules[name]))
            self._armed.add(id(register))
        celery_signals = sys.modules.get("celery.signals")
        if celery_signals is not None:
            celery_signals.worker_process_shutdown.connect(
                self._on_celery_worker_process_shutdown,
                weak=False,
                dispatch_uid=CELERY_RECEIVER_UID,
            )

    def install(self) -> None:
        """Arm every child this process forks to flush when it ends as a pool worker."""
        if self._installed:
            return
        self._installed = True
        self._lifecycle.after_fork_in_child(self._arm)
