"""The one HTML page of local mode, as the live page or as the self-contained report.

The page's script, style and data are inlined, so the report opens from disk with no
network.  Names from the program reach the page only inside the JSON data block, written
so that no ``</script>`` or ``<!--`` can appear in it, and the script puts them in the
page with ``textContent``.  A Content-Security-Policy allows only this page's own script
and style (by hash), so even a mistake in escaping could not run injected code.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from importlib import resources
from typing import Any, Final

_ASSETS: Final = "assets"
_PLACEHOLDER: Final = re.compile(r"\{\{(CSP|TITLE|CSS|DATA|JS)\}\}")


def _asset(name: str) -> str:
    return (resources.files("pyrospan_launch.local") / _ASSETS / name).read_text("utf-8")


def json_for_script(data: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``.

    ``<``, ``>`` and ``&`` become ``\\u003c`` and so on (still the same JSON strings), so
    no ``</script>`` or ``<!--`` can end or change the block; U+2028/U+2029 likewise.
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


def _hash(source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def render(data: dict[str, Any], *, title: str, live: bool) -> str:
    """The page with ``data`` embedded; ``live`` lets its script fetch from the same origin."""
    script, style = _asset("app.js"), _asset("app.css")
    # These would end the element early or switch the HTML parser's script state.
    if any(bad in script.lower() for bad in ("</script", "<script", "<!--")) or (
        "</style" in style.lower()
    ):
        raise ValueError("an inline asset must not contain markup that ends its element")
    policy = "; ".join(
        [
            "default-src 'none'",
            f"script-src {_hash(script)}",
            f"style-src {_hash(style)}",
            "connect-src 'self'" if live else "connect-src 'none'",
            "img-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )
    values = {
        "CSP": html.escape(policy),
        "TITLE": html.escape(title),
        "CSS": style,
        "DATA": json_for_script(data),
        "JS": script,
    }
    # One pass: a placeholder spelled inside the data is not expanded again.
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], _asset("page.html"))
