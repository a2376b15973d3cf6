"""The proxy variables as each signal's client applies them, and the hops that must skip them.

Profiles: pyroscope-io (reqwest, whose proxy matcher is hyper-util's) reads the variables
once, when ``pyroscope.configure()`` builds its HTTP client:

* ``HTTPS_PROXY`` for https URLs and ``HTTP_PROXY`` for http URLs, ``ALL_PROXY`` for
  both when the scheme's own is not usable; for each, the upper-case name if it is set
  at all (even empty), else the lower-case one;
* ``NO_PROXY`` (else ``no_proxy``): comma-separated IP addresses and networks, ``*``,
  or domains that match themselves and their subdomains.  An IP host is compared only
  with IP entries (``localhost`` does not cover 127.0.0.1), and an entry with a port is
  a domain that never matches;
* no proxy at all when ``REQUEST_METHOD`` is set (a CGI program);
* a proxy URL may carry ``user:password@`` (sent as ``Proxy-Authorization``).

The relay forwards with these same rules (:func:`profile_proxy`), so profiles take the
path they took when pyroscope-io pushed directly.  The hop from pyroscope-io to the relay
never takes a proxy (:func:`direct_to`), and neither does local mode's child talking to
the launcher's receiver.

Spans: the OTLP/HTTP exporter sends with ``requests``, which reads the lower-case names
first (Python's ``urllib.request.getproxies``); :func:`span_proxy` says what it will do,
for ``--info`` and ``--check``.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Mapping

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple

    class _ProxyFields(NamedTuple):
        url: str  # as given, credentials included: never print it, print ``shown``
        scheme: str
        host: str
        port: int
        authorization: str  # "Basic ..." for Proxy-Authorization, or ""
        variable: str  # the variable it came from
else:
    _ProxyFields = namedtuple("_ProxyFields", "url scheme host port authorization variable")


class Proxy(_ProxyFields):
    """A proxy a request goes through."""

    __slots__ = ()

    @property
    def shown(self) -> str:
        """The proxy as it may be printed: no credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port} ({self.variable})"


_LOOPBACK_ENTRY = "127.0.0.1"


def _first_set(environ: Mapping[str, str], upper: str) -> tuple[str, str]:
    """(name, value) of the upper-case variable if set at all, else of the lower-case one."""
    for name in (upper, upper.lower()):
        if name in environ:
            return name, environ[name]
    return upper, ""


def _parse_proxy(raw: str, variable: str) -> Proxy | None:
    """A proxy URL as hyper-util takes it; None when it would be ignored."""
    from urllib.parse import unquote, urlsplit

    raw = raw.strip()
    if not raw:
        return None
    text = raw if "://" in raw else f"http://{raw}"  # no scheme: http
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https", "socks4", "socks4a", "socks5", "socks5h"):
        return None
    if not parts.hostname:
        return None
    authorization = ""
    if parts.username is not None and scheme in ("http", "https"):
        import base64

        user = unquote(parts.username)
        password = unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        authorization = f"Basic {token}"
    default_port = {"http": 80, "https": 443}.get(scheme, 1080)
    return Proxy(raw, scheme, parts.hostname, port or default_port, authorization, variable)


def _no_proxy_matches(no_proxy: str, host: str) -> bool:
    """hyper-util's NO_PROXY rules (see the module docstring)."""
    if not no_proxy.strip():
        return False
    import ipaddress

    host = host.strip("[]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in (part.strip() for part in no_proxy.split(",")):
        if not entry:
            continue
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            network = None
        if network is not None:
            if address is not None and address in network:
                return True
            continue
        if address is not None:
            continue  # an IP host is compared with IP entries only
        if entry == "*":
            return True
        name = host.lower()
        domain = entry.lower()
        if domain.startswith("."):
            if name == domain[1:] or name.endswith(domain):
                return True
        elif name == domain or name.endswith("." + domain):
            return True
    return False


def profile_proxy(url: str, environ: Mapping[str, str]) -> Proxy | None:
    """The proxy pyroscope-io would push ``url`` through given ``environ``; None: direct."""
    if "REQUEST_METHOD" in environ or not any_proxy(environ):
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    _, no_proxy = _first_set(environ, "NO_PROXY")
    if host and _no_proxy_matches(no_proxy, host):
        return None
    specific = "HTTPS_PROXY" if parts.scheme == "https" else "HTTP_PROXY"
    name, value = _first_set(environ, specific)
    proxy = _parse_proxy(value, name)
    if proxy is None:
        all_name, all_value = _first_set(environ, "ALL_PROXY")
        proxy = _parse_proxy(all_value, all_name)
    return proxy


def any_proxy(environ: Mapping[str, str]) -> bool:
    """True when some proxy variable is set to a non-empty value (either case)."""
    return any(
        environ.get(name, "").strip()
        for upper in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
        for name in (upper, upper.lower())
    )


def direct_to(environ: Mapping[str, str], host: str = _LOOPBACK_ENTRY) -> dict[str, str]:
    """The ``NO_PROXY``/``no_proxy`` values under which both signals' clients reach ``host``
    directly: each of the two that is set gets ``host`` added, or ``NO_PROXY`` is set when
    neither is (pyroscope-io reads the upper-case one first, requests the lower-case one)."""
    changed: dict[str, str] = {}
    for name in ("NO_PROXY", "no_proxy"):
        if name in environ:
            entries = [part.strip() for part in environ[name].split(",") if part.strip()]
            if host not in entries:
                changed[name] = ",".join([*entries, host])
    if "NO_PROXY" not in environ and "no_proxy" not in environ:
        changed["NO_PROXY"] = host
    return changed


def _python_proxies(environ: Mapping[str, str]) -> dict[str, str]:
    """Python's ``urllib.request.getproxies_environment`` on ``environ``: lower case wins."""
    proxies: dict[str, str] = {}
    for name, value in environ.items():
        if value and name.lower().endswith("_proxy"):
            proxies[name[:-6].lower()] = value
    for name, value in environ.items():
        if name.endswith("_proxy") and name == name.lower():
            if value:
                proxies[name[:-6]] = value
            else:
                proxies.pop(name[:-6], None)
    if "REQUEST_METHOD" in environ:
        proxies.pop("http", None)
    return proxies


def _python_bypass(no_proxy: str, host: str) -> bool:
    """requests' ``should_bypass_proxies``: suffixes, ``*``, and IPv4 networks."""
    import ipaddress

    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    for entry in (part.strip() for part in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
        if host == entry or host.endswith(entry if entry.startswith(".") else "." + entry):
            return True
    return False


def span_proxy(url: str, environ: Mapping[str, str]) -> Proxy | None:
    """The proxy the OTLP/HTTP exporter (requests) would send ``url`` through; None: direct."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    proxies = _python_proxies(environ)
    if _python_bypass(proxies.get("no", ""), (parts.hostname or "").lower()):
        return None
    scheme = parts.scheme.lower()
    for key in (scheme, "all"):
        if proxies.get(key):
            variable = next(
                (n for n in (f"{key}_proxy", f"{key.upper()}_PROXY") if environ.get(n)), key
            )
            return _parse_proxy(proxies[key], variable)
    return None
