"""The app's own thread tags (``tag_wrapper``, ``add_thread_tag``) within Pyroscope's limits.

pyroscope-io sends a thread tag as a string label of the thread's samples, and the server
makes it a series label: one value over 2,048 bytes, or one label too many, and the
server rejects the whole profile, every span's samples with it
(:mod:`pyrospan_launch.settings.label_limits`).  :class:`AppTags` stands in for the native
``add_thread_tag`` and ``remove_thread_tag`` that ``tag_wrapper`` and the module-level
functions call, so whatever the app tags leaves fitted:

* a value is cut at a character boundary, the same cut for the add and the remove;
* a name too long to send, or a new name on a thread that already shows as many as a
  series can take, is not set (and its remove is skipped).

The first change of each kind prints one ``pyrospan:`` warning.  pyrospan-run's own span
labels call the native functions directly and are not counted here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pyrospan_launch.common import log
from pyrospan_launch.settings.config import Config
from pyrospan_launch.settings.label_limits import (
    MAX_NAME_BYTES,
    MAX_SERIES_LABELS,
    MAX_VALUE_BYTES,
    fit_name,
    fit_value,
    user_label_room,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

TagFunction = Callable[[str, str], object]


class _Shown(threading.local):
    """Per thread: how many values of each app tag name are set, and the pairs refused."""

    def __init__(self) -> None:
        self.names: dict[str, int] = {}
        self.refused: set[tuple[str, str]] = set()


class AppTags:
    """The app's tag calls, fitted, then passed to pyroscope-io's native functions.

    ``room`` is how many tag names a thread may show besides pyrospan-run's own labels
    and the profile's series labels (``label_limits.user_label_room`` less the user's
    labels).
    """

    def __init__(self, add: TagFunction, remove: TagFunction, room: int) -> None:
        self._add = add
        self._remove = remove
        self.room = room
        self._shown = _Shown()
        self._said: set[str] = set()
        self._installed: tuple[Any, TagFunction, TagFunction] | None = None
        # Called once, before the app's first tag is set (the Stack sampler reads none).
        self.on_first_tag: Callable[[], object] | None = None

    def add(self, key: Any, value: Any) -> object:
        """``add_thread_tag`` for the app: fitted, or not set when it cannot fit."""
        if type(key) is not str or type(value) is not str:
            return self._add(key, value)  # the native function's own TypeError
        name = fit_name(key)
        shown = self._shown
        if name is None:
            shown.refused.add((key, value))
            why = f"is more than {MAX_NAME_BYTES} bytes" if key else "is empty"
            self._say(
                "name",
                f"the app's thread tag {key[:40]!r} was not set: its name {why}, and "
                "Pyroscope rejects a profile that carries it",
            )
            return None
        if name not in shown.names and len(shown.names) >= self.room:
            shown.refused.add((key, value))
            self._say(
                "count",
                f"the app's thread tag {name} was not set, nor any past the first "
                f"{self.room} on a thread: with the profiler's own labels and the span labels, "
                f"a Pyroscope series takes at most {MAX_SERIES_LABELS}",
            )
            return None
        if self.on_first_tag is not None:
            first, self.on_first_tag = self.on_first_tag, None
            first()
        fitted = fit_value(value)
        if fitted is not value:
            self._say(
                "value",
                f"the value of the app's thread tag {name} was cut to {MAX_VALUE_BYTES} bytes "
                "of UTF-8, the most Pyroscope takes in a label value",
            )
        result = self._add(name, fitted)  # counted once set: the native call may raise
        shown.names[name] = shown.names.get(name, 0) + 1
        return result

    def remove(self, key: Any, value: Any) -> object:
        """``remove_thread_tag`` for the app: the pair as :meth:`add` set it, if it did."""
        if type(key) is not str or type(value) is not str:
            return self._remove(key, value)
        shown = self._shown
        if (key, value) in shown.refused:
            shown.refused.discard((key, value))
            return None
        name = fit_name(key) or key
        count = shown.names.get(name, 0)
        if count <= 1:
            shown.names.pop(name, None)
        else:
            shown.names[name] = count - 1
        return self._remove(name, fit_value(value))

    def tag_functions(self) -> tuple[TagFunction, TagFunction]:
        """The functions that set and unset the app's fitted tags now."""
        return self._add, self._remove

    def retarget(self, add: TagFunction, remove: TagFunction) -> None:
        """Set the app's fitted tags through these functions from now on."""
        self._add = add
        self._remove = remove

    def install(self, native: Any) -> None:
        """Stand in for ``native.add_thread_tag`` and ``native.remove_thread_tag``."""
        if self._installed is not None:
            return
        self._installed = (native, native.add_thread_tag, native.remove_thread_tag)
        native.add_thread_tag = self.add
        native.remove_thread_tag = self.remove

    def move_to(self, native: Any) -> None:
        """Stand in for ``native``'s functions instead (a forked child's own copy)."""
        self.uninstall()
        self._add = native.add_thread_tag
        self._remove = native.remove_thread_tag
        self.install(native)

    def uninstall(self) -> None:
        """Put the native functions back."""
        if self._installed is None:
            return
        native, add, remove = self._installed
        native.add_thread_tag = add
        native.remove_thread_tag = remove
        self._installed = None

    def _say(self, kind: str, message: str) -> None:
        if kind not in self._said:
            self._said.add(kind)
            log.warning(message)


def room_for(config: Config) -> int:
    """How many thread tag names the app may set on a thread under ``config``."""
    assert config.profiler is not None
    span_labels = config.span_name_label + config.trace_id_label
    return max(0, user_label_room(span_labels) - len(config.profiler.tags))


def install(room: int, on_first_tag: Callable[[], object] | None = None) -> AppTags | None:
    """Fit the app's thread tags from now on (pyroscope-io's profiler is running).

    ``on_first_tag`` is called once, when the app sets its first thread tag.
    """
    import pyroscope

    native: Any = getattr(pyroscope, "_native", None)
    if not callable(getattr(native, "add_thread_tag", None)):
        return None
    tags = AppTags(native.add_thread_tag, native.remove_thread_tag, room)
    tags.on_first_tag = on_first_tag
    tags.install(native)
    return tags
