"""Keep secrets out of what pyrospan-run prints: the values to hide, and text with them hidden.

The secret variables of the settings registry (basic-auth password, Pyroscope and OTLP
headers) reach the network as header values, so an error message can carry them in
another form than the variable's text: OTLP header values are percent-encoded in the
variable and decoded on the wire, and ``Bearer <token>`` travels as one value.  Every
form is hidden.  URLs may carry a password too (``http://user:secret@host``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote

from pyrospan_launch.settings import registry

SHOWN_INSTEAD = "<redacted>"

# Parts of a header value shorter than this (``Bearer``'s neighbours such as ``a``) are
# not worth hiding on their own: the whole value still is.
_MIN_PART = 4


def _header_values(raw: str) -> list[str]:
    """The values of a ``Name=value,...`` or JSON header list, as written and decoded."""
    values: list[str] = []
    if raw.lstrip().startswith("{"):
        try:
            decoded = json.loads(raw)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            values += [str(value) for value in decoded.values()]
    for item in raw.split(","):
        _, sep, value = item.partition("=")
        if sep:
            values += [value.strip(), unquote(value).strip()]
    return values


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """Every text that would give a secret away, longest first (so replacement is whole)."""
    found: set[str] = set()
    for raw in registry.secret_values(environ):
        forms = [raw, raw.strip(), *_header_values(raw)]
        for form in forms:
            if form:
                found.add(form)
            found.update(part for part in re.split(r"\s+", form) if len(part) >= _MIN_PART)
    return sorted(found, key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced, and any password in a URL hidden."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, SHOWN_INSTEAD)
    return _URL_PASSWORD.sub(rf"\1{SHOWN_INSTEAD}@", text)


# scheme://user:password@ -> scheme://user:<redacted>@
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@")
