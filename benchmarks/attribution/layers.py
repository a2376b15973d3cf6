"""Layers of calls between a span's code and the function that burns its CPU, as in services.

Real services run their work tens of frames below the request (framework, service layer,
ORM, driver); a sampler that reads a stack while the thread runs on tears deep stacks
more often than shallow ones.  ``descend`` adds plain frames, ``layered`` coroutine
frames that all suspend and resume at each ``await`` below them, as an async service's
layers do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def descend(frames: int, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` called ``frames`` (at least one) frames of this function below the caller."""
    if frames > 1:
        return descend(frames - 1, fn, *args)
    return fn(*args)


async def _layer(frames: int, bottom: Callable[[], Awaitable[T]]) -> T:
    if frames > 1:
        return await _layer(frames - 1, bottom)
    return await bottom()


def layered(frames: int, bottom: Callable[[], Coroutine[Any, Any, T]]) -> Awaitable[T]:
    """``bottom()`` awaited ``frames`` coroutine frames below the awaiting one (0: directly)."""
    return _layer(frames, bottom) if frames > 0 else bottom()
