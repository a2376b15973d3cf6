"""What one process's relay did: pushes received, forwarded, failed, dropped, refused."""

from __future__ import annotations


class Stats:
    """What the relay did, for debug lines, --info and tests."""

    def __init__(self) -> None:
        self.received = 0
        self.rejected = 0
        self.forwarded = 0
        self.failed = 0
        self.dropped = 0  # oldest pushes dropped while the backend was slow or down
        self.cpu_seconds = 0.0  # thread CPU spent reading, rewriting and forwarding pushes
        self.last_status: int | None = None  # the last forward's HTTP status (None: no answer)
        self.last_cause = ""  # why the last forward failed, in words ("" when it did not)

    def summary(self) -> str:
        """One line for debug output."""
        return (
            f"{self.received} pushes received, {self.forwarded} forwarded, {self.failed} "
            f"failed, {self.dropped} dropped, {self.rejected} requests refused; "
            f"{self.cpu_seconds * 1000:.1f} ms of CPU"
        )
