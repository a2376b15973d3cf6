"""The live page's routes, served by the receiver's own HTTP server (its ``pages`` hook).

* ``GET /`` - the page (the same HTML as the report, fetching its data from here).
* ``GET /api/summary`` - the tables as JSON, recomputed only when new data has arrived.
* ``GET /api/flame?view=process|name:<name>|span:<id>`` - one flame graph as JSON.

The server listens on 127.0.0.1 only.  Requests must also name a loopback host, so a
web site cannot read the page through DNS rebinding (its requests carry its own name).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from pyrospan_launch.local import html, views
from pyrospan_launch.local.store import Scope, Store

#: Root spans listed on the live page (the latest); groups always cover every span.
LIVE_SPAN_LIMIT: Final = 500
_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "[::1]"})
_JSON: Final = "application/json"
_TEXT: Final = "text/plain; charset=utf-8"


def _host_name(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if ":" in host else host


class LivePage:
    """A ``pages`` handler for :class:`~pyrospan_launch.receiver.Receiver`."""

    def __init__(self, store: Store, *, report_path: Path, title: str = "") -> None:
        self.store = store
        data = {"mode": "live", "report": str(report_path)}
        self._page = html.render(data, title=title or "Span profiles", live=True).encode()
        self._lock = threading.Lock()
        self._summary: tuple[int, bytes] | None = None

    def __call__(self, target: str, host: str) -> tuple[int, bytes, str]:
        """Answer one GET: (status, body, content type)."""
        if _host_name(host) not in _LOOPBACK_HOSTS:
            return 403, b"this page answers only to 127.0.0.1 or localhost\n", _TEXT
        parts = urlsplit(target)
        if parts.path in ("/", "/index.html"):
            return 200, self._page, "text/html; charset=utf-8"
        if parts.path == "/api/summary":
            return 200, self._summary_json(), _JSON
        if parts.path == "/api/flame":
            views_asked = parse_qs(parts.query).get("view", [])
            scope = Scope.parse(views_asked[0]) if len(views_asked) == 1 else None
            if scope is None:
                return 400, b"view must be process, name:<span name> or span:<span id>\n", _TEXT
            document = views.flame_document(self.store, scope)
            if document is None:
                return 404, b"no such span or span name stored\n", _TEXT
            return 200, _dumps(document), _JSON
        return 404, b"not found\n", _TEXT

    def _summary_json(self) -> bytes:
        # Pages poll every second; recompute only when a new batch has been stored.
        with self._lock:
            version = self.store.version
            if self._summary is None or self._summary[0] != version:
                document = views.summary_document(self.store, span_limit=LIVE_SPAN_LIMIT)
                self._summary = (version, _dumps(document))
            return self._summary[1]


def _dumps(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
