"""pyrospan-run's cache directory (``$XDG_CACHE_HOME/pyrospan-run``), shared by both sides."""

from __future__ import annotations

import os


def directory() -> str:
    """Where pyrospan-run keeps what it may recompute or lose: never required to exist."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pyrospan-run")
