"""Send the last data of forked pool workers, which end through ``os._exit`` and skip atexit.

* A multiprocessing child (fork and forkserver start methods) clears the finalizers it
  inherited, runs the "after fork" callbacks of ``multiprocessing.util``, runs its target,
  runs its finalizers and leaves through ``os._exit``.  An after-fork callback registered
  in the child, before that, adds a finalizer of ours after the clearing.  billiard
  (celery's fork of multiprocessing) uses the same registries.
* A celery prefork worker process ends in billiard's pool loop, also through ``os._exit``
  but without finalizers; celery sends its ``worker_process_shutdown`` signal just before,
  and a receiver of ours flushes then.

Both run :func:`lifecycle.flush_at_exit`, so the deadline and the once-per-process rule
hold.  Nothing here imports multiprocessing or celery: a child is armed only with what
its parent had loaded when it forked.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from pyrospan_launch.agent import lifecycle

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
_armed: set[int] = set()
_installed = False


class _Anchor:
    """A weak-referenceable object that keeps our entry in the after-fork registry."""


_ANCHOR = _Anchor()


def _finalizer_registrar(util: Any) -> Callable[[object], None]:
    def register_finalizer(_anchor: object) -> None:
        util.Finalize(None, lifecycle.flush_at_exit, exitpriority=FINALIZER_PRIORITY)

    return register_finalizer


def _on_celery_worker_process_shutdown(**_: object) -> None:
    lifecycle.flush_at_exit()


def _arm() -> None:
    for name in MULTIPROCESSING_UTILS:
        register = getattr(sys.modules.get(name), "register_after_fork", None)
        if register is None or id(register) in _armed:
            continue
        register(_ANCHOR, _finalizer_registrar(sys.modules[name]))
        _armed.add(id(register))
    celery_signals = sys.modules.get("celery.signals")
    if celery_signals is not None:
        celery_signals.worker_process_shutdown.connect(
            _on_celery_worker_process_shutdown, weak=False, dispatch_uid=CELERY_RECEIVER_UID
        )


def install() -> None:
    """Arm every child this process forks to flush when it ends as a pool worker."""
    global _installed
    if _installed:
        return
    _installed = True
    lifecycle.after_fork_in_child(_arm)
