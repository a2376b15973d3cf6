"""One ``pyrospan:`` line per problem: the first at once, then at most one per interval.

A *problem* is a signal and its cause (``spans`` and ``HTTP 401 Unauthorized``).  Both
kinds of delivery report through one of these: OpenTelemetry's export errors
(:mod:`pyrospan_launch.agent.export_errors`) and the relay's profile pushes
(:mod:`pyrospan_launch.agent.relay.delivery`).  The interval is the profile upload
interval, the rhythm at which the user expects data to leave, but never under
:data:`MIN_REPEAT` seconds: a backend down for an hour gives 60 reminders, not 360, the
rate ddtrace's own logger keeps to.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from pyrospan_launch.common import log

# Seconds between two lines about one problem, at least.
MIN_REPEAT = 60.0


def interval_seconds(environ: Mapping[str, str]) -> float:
    """The reporting interval: the profile upload interval (its default if not valid), at
    least :data:`MIN_REPEAT`."""
    from pyrospan_launch.settings import reads

    return max(reads.upload_interval_seconds(environ), MIN_REPEAT)


class _Problem:
    __slots__ = ("reported_at", "total", "unreported")

    def __init__(self, now: float) -> None:
        self.reported_at = now
        self.unreported = 0
        self.total = 1


class ProblemLines:
    """Counts occurrences of problems and says each one at the rate described above."""

    def __init__(
        self,
        interval: float,
        secrets: list[str],
        *,
        clock: Callable[[], float] | None = None,
        say: Callable[[str], None] = log.warning,
    ) -> None:
        self.interval = max(interval, 0.0)
        self.secrets = secrets
        self._clock = clock or time.monotonic
        self._say = say
        self._problems: dict[tuple[str, str], _Problem] = {}
        self._lock = threading.Lock()
        self.reported: list[str] = []  # what was said, for tests

    def after_fork(self) -> None:
        """A fresh lock in a forked child (the parent's may have been held at the fork)."""
        self._lock = threading.Lock()

    def occurred(self, signal: str, cause: str) -> str | None:
        """Count one occurrence; the line said for it, or None when it waits its turn."""
        # A timeout rather than a plain acquire: a signal handler may log while the code it
        # interrupted holds the lock; an occurrence lost then is better than a deadlock.
        if not self._lock.acquire(timeout=0.2):
            return None
        try:
            now = self._clock()
            key = (signal, cause)
            problem = self._problems.get(key)
            if problem is None:
                self._problems[key] = _Problem(now)
                line = (
                    f"{signal} not sent: {cause}; reported again at most once every "
                    f"{self.interval:g} s while it lasts"
                )
            else:
                problem.total += 1
                if now - problem.reported_at < self.interval:
                    problem.unreported += 1
                    return None
                times = problem.unreported + 1
                line = (
                    f"{signal} still not sent: {cause} ({times} time{'s' if times > 1 else ''} "
                    f"in the last {now - problem.reported_at:.0f} s)"
                )
                problem.reported_at, problem.unreported = now, 0
            if self.secrets or "@" in line:
                from pyrospan_launch.common import redact

                line = redact.scrub(line, self.secrets)
            self.reported.append(line)
        finally:
            self._lock.release()
        self._say(line)
        return line

    def totals(self, signal: str) -> dict[str, int]:
        """How often each cause of ``signal`` occurred so far."""
        return {
            cause: problem.total
            for (kind, cause), problem in list(self._problems.items())
            if kind == signal
        }
