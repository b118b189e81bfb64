"""The admin surface: status page, status JSON, evacuate/restore, metrics.

Answered only to allowed clients (:class:`AdminAccess`): a peer address on
an allow-list of networks (loopback by default), a ``Host`` header that
names an allowed host (loopback names and addresses by default: a page
that reached this port through DNS rebinding names its own host), and
optionally a bearer token compared in constant time. Everyone else gets a
plain 404, as if nothing were there. ``REMOTE_ADDR`` is the peer address:
behind a reverse proxy, put ``werkzeug.middleware.proxy_fix.ProxyFix`` in
front so it is the client's.

Actions (evacuate, restore, the demo's outage buttons) also need the token,
or a same-origin request: a browser's ``Origin`` must be this very host and
port, ``Sec-Fetch-Site`` (when sent) ``same-origin``. A request that sends
neither header (curl) may act only from a loopback address.

Evacuate and restore force a region's breaker open or closed, a manual
switch like Route 53 ARC routing controls; readiness follows.

Every header is read as a client may send it: absent, empty, malformed or
full of odd bytes. Parsing never raises; what does not parse is refused.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

from regionproxy.errors import ConfigError
from regionproxy.health import health_json

if TYPE_CHECKING:
    from regionproxy.health import HealthMonitor
    from regionproxy.metrics import PrometheusListener

StartResponse = Callable[..., Any]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK = ("127.0.0.0/8", "::1/128")
LOOPBACK_HOSTS = ("localhost", "127.0.0.0/8", "::1")
ACTIONS = ("evacuate", "restore")
DEMO_ACTIONS = ("outage", "heal")
READ_METHODS = ("GET", "HEAD")
SAME_ORIGIN = ("same-origin", "none")  # Sec-Fetch-Site values of a request this site made
DEFAULT_PORTS = {"http": 80, "https": 443}
TOKEN_MIN = 16

# A host name as it may appear in a Host header: labels of letters, digits,
# '-' and '_' (lower case by then). Labels exclude '.', so matching is linear.
_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
_PORT = re.compile(r"[0-9]{1,5}")
_TOKEN = re.compile(r"[!-~]+")  # visible ASCII: what an Authorization header carries intact


def parse_host(value: str) -> tuple[str, int | None] | None:
    """``(host, port)`` from a ``Host`` header or an origin's authority, or
    None when it is malformed.

    The host is lower case, an IPv6 literal loses its brackets (an
    unbracketed one is tolerated without a port), a name loses one trailing
    dot; the port is None when absent.
    """
    if not value.isascii():  # and so lower() cannot turn a foreign letter into an ASCII one
        return None
    text = value.lower()
    port = ""
    if text.startswith("["):
        literal, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        host, port = _ipv6(literal), rest[1:]
        if host is None:
            return None
    elif text.count(":") > 1:
        host = _ipv6(text)
        if host is None:
            return None
    else:
        host, _, port = text.partition(":")
        host = host.removesuffix(".")
        if not _NAME.fullmatch(host):
            return None
    if not port:
        return host, None
    if not _PORT.fullmatch(port) or int(port) > 65535:
        return None
    return host, int(port)


def parse_origin(value: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an ``Origin`` header (the port defaulted
    by scheme), or None for ``null``, another scheme, or anything malformed."""
    scheme, separator, authority = value.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in DEFAULT_PORTS:
        return None
    parsed = parse_host(authority)
    if parsed is None:
        return None
    host, port = parsed
    return scheme, host, DEFAULT_PORTS[scheme] if port is None else port


def _ipv6(text: str) -> str | None:
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        return None


def _address(text: str) -> Address | None:
    """An IP address (an IPv4-mapped IPv6 one as IPv4), or None."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _header(environ: dict[str, Any], key: str) -> str | None:
    """An environ value as a string, or None when absent (a server that
    puts something else there is treated as sending nothing usable)."""
    value = environ.get(key)
    return value if isinstance(value, str) else None


def _sequence(setting: str, value: Any, what: str) -> Sequence[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, set, frozenset)):
        raise ConfigError(f"{setting} must be a list of {what}, not {value!r}", setting=setting)
    return list(value)


def allowed_networks(value: Any, setting: str = "admin_allow") -> tuple[Network, ...]:
    """Networks (CIDR strings, or single addresses) from a list; ConfigError otherwise."""
    networks = []
    for entry in _sequence(setting, value, "networks such as '10.0.0.0/8'"):
        if not isinstance(entry, str):
            raise ConfigError(f"{setting}: {entry!r} is not a network string", setting=setting)
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as error:
            raise ConfigError(f"{setting}: {error}", setting=setting) from error
    return tuple(networks)


def admin_token(value: Any, setting: str = "admin_token") -> str | None:
    """None, or a token of at least 16 visible ASCII characters (what an
    ``Authorization`` header carries unchanged); ConfigError otherwise."""
    if value is not None and (not isinstance(value, str) or len(value) < TOKEN_MIN or not _TOKEN.fullmatch(value)):
        raise ConfigError(
            f"{setting} must be None or at least {TOKEN_MIN} visible ASCII characters (no spaces)", setting=setting
        )
    return value


class AllowedHosts:
    """Which ``Host`` header values may reach the admin surface.

    :param hosts: exact names (``status.internal``), suffixes
        (``*.example.com``: any name under it, not itself), and IP
        addresses or networks (``127.0.0.0/8``, ``::1``, ``[::1]``).
    """

    def __init__(self, hosts: Sequence[str] = LOOPBACK_HOSTS, setting: str = "admin_hosts") -> None:
        names, suffixes, networks = set(), [], []
        entries = _sequence(setting, hosts, "host names")
        if not entries:
            raise ConfigError(f"{setting} must name at least one host", setting=setting)
        for entry in entries:
            if not isinstance(entry, str):
                raise ConfigError(f"{setting}: {entry!r} is not a host name", setting=setting)
            text = entry.lower()
            literal = text[1:-1] if text.startswith("[") and text.endswith("]") else text
            try:
                networks.append(ipaddress.ip_network(literal, strict=False))
                continue
            except ValueError:
                pass
            suffix = text.removeprefix("*.")
            if not _NAME.fullmatch(suffix) or _address(suffix) is not None:
                raise ConfigError(
                    f"{setting}: {entry!r} is not a host name, '*.' suffix, IP address or network", setting=setting
                )
            if not text.startswith("*."):
                names.add(text)
            else:
                suffixes.append("." + suffix)
        self.names = frozenset(names)
        self.suffixes = tuple(suffixes)
        self.networks = tuple(networks)

    def __repr__(self) -> str:
        shown = [*sorted(self.names), *("*" + s for s in self.suffixes), *map(str, self.networks)]
        return f"AllowedHosts({shown})"

    def __contains__(self, host: str) -> bool:
        """``host`` as :func:`parse_host` returns it."""
        address = _address(host)
        if address is not None:
            return _within(address, self.networks)
        return host in self.names or host.endswith(self.suffixes)


def _within(address: Address, networks: Iterable[Network]) -> bool:
    return any(address in network for network in networks)


class AdminAccess:
    """Who may use the admin surface.

    :param allow: networks (CIDR strings) whose clients are allowed.
    :param token: if set, clients must also send ``Authorization: Bearer <token>``.
    :param hosts: ``Host`` header values allowed (see :class:`AllowedHosts`);
        a request without one is allowed only from a loopback address.
    """

    def __init__(
        self, allow: Sequence[str] = LOOPBACK, token: str | None = None, hosts: Sequence[str] = LOOPBACK_HOSTS
    ) -> None:
        self.networks = allowed_networks(allow)
        token = admin_token(token)
        self.hosts = AllowedHosts(hosts)
        self._token = token.encode() if token else None

    def __repr__(self) -> str:
        # Never the token itself: reprs end up in logs.
        return (
            f"AdminAccess(allow={[str(n) for n in self.networks]}, hosts={self.hosts!r}, "
            f"token={'set' if self._token else None})"
        )

    def allows(self, environ: dict[str, Any]) -> bool:
        """May this request see the admin surface and metrics?"""
        peer = _address(_header(environ, "REMOTE_ADDR") or "")
        if peer is None or not _within(peer, self.networks):
            return False
        host = _header(environ, "HTTP_HOST")
        if not host:  # HTTP/1.0 names no host: only this machine may omit it
            if not peer.is_loopback:
                return False
        else:
            parsed = parse_host(host)
            if parsed is None or parsed[0] not in self.hosts:
                return False
        if self._token is None:
            return True
        scheme, _, credentials = (_header(environ, "HTTP_AUTHORIZATION") or "").partition(" ")
        credentials = credentials.strip()
        return (
            scheme.lower() == "bearer"
            and credentials.isascii()
            and hmac.compare_digest(credentials.encode("ascii"), self._token)
        )

    def may_act(self, environ: dict[str, Any]) -> bool:
        """May this request, already :meth:`allows`-ed, change something?

        With a token it has presented it, and a browser cannot attach a
        bearer token on its own. Without one, the request must come from a
        page of this very host (CSRF, DNS rebinding), or from a loopback
        client that sends no browser headers at all (curl).
        """
        if self._token is not None:
            return True
        site = environ.get("HTTP_SEC_FETCH_SITE")
        origin = environ.get("HTTP_ORIGIN")
        if site is None and origin is None:
            peer = _address(_header(environ, "REMOTE_ADDR") or "")
            return peer is not None and peer.is_loopback
        if site is not None and site not in SAME_ORIGIN:
            return False
        if origin is None:
            return True
        source = parse_origin(origin) if isinstance(origin, str) else None
        host = parse_host(_header(environ, "HTTP_HOST") or "")
        if source is None or host is None:
            return False
        scheme, origin_host, origin_port = source
        name, port = host
        return origin_host == name and origin_port == (DEFAULT_PORTS[scheme] if port is None else port)


def respond(start_response: StartResponse, status: str, body: bytes, content_type: str, **headers: str) -> list[bytes]:
    start_response(
        status,
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            *((name.replace("_", "-"), value) for name, value in headers.items()),
        ],
    )
    return [body]


def not_found(start_response: StartResponse) -> list[bytes]:
    return respond(start_response, "404 Not Found", b"Not Found\n", "text/plain; charset=utf-8")


class AdminApp:
    """WSGI app for ``<prefix>/``, ``<prefix>/status.json``, region actions
    and (when ``metrics`` is given) the metrics exposition.

    :param monitor: the health monitor (its session is the one shown).
    :param access: who may use it.
    :param metrics: the Prometheus listener, or None.
    :param lab: a :class:`~regionproxy.testing.LocalRegions` in demo mode:
        adds buttons that cause and heal a region's outage. Never in production.
    """

    def __init__(
        self,
        monitor: HealthMonitor,
        access: AdminAccess,
        *,
        metrics: PrometheusListener | None = None,
        lab: Any = None,
    ) -> None:
        self.monitor = monitor
        self.session = monitor.session
        self.access = access
        self.metrics = metrics
        self.lab = lab

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not self.access.allows(environ):
            return not_found(start_response)
        path = _header(environ, "PATH_INFO") or "/"
        method = _header(environ, "REQUEST_METHOD") or "GET"
        if path == "/metrics" and self.metrics is None:
            return not_found(start_response)
        if path in ("/", "/status.json", "/metrics"):
            if method not in READ_METHODS:
                return respond(
                    start_response, "405 Method Not Allowed", b"GET or HEAD only\n", "text/plain", Allow=", ".join(READ_METHODS)
                )
            answer = self._page(start_response) if path == "/" else self._read(start_response, path)
            return [] if method == "HEAD" else answer
        # '/regions/<region>/<action>' exactly: no trailing slash, no empty segment.
        parts = path.split("/")
        if len(parts) == 4 and parts[0] == "" and parts[1] == "regions" and parts[3] in (*ACTIONS, *DEMO_ACTIONS):
            if method != "POST":
                return respond(start_response, "405 Method Not Allowed", b"POST only\n", "text/plain", Allow="POST")
            return self._act(environ, start_response, parts[2], parts[3])
        return not_found(start_response)

    def status(self) -> dict[str, Any]:
        status = self.session.status()
        status["readiness"] = health_json(self.monitor.readiness())
        if self.lab is not None:
            status["demo"] = {region: self.lab.outage(region) is not None for region in self.session.regions}
        return status

    def _page(self, start_response: StartResponse) -> list[bytes]:
        template = _status_template()
        # '</' cannot appear inside the JSON: it would end the script element.
        initial = json.dumps(self.status()).replace("</", "<\\/")
        body = template.replace("__INITIAL__", initial).encode()
        return respond(
            start_response,
            "200 OK",
            body,
            "text/html; charset=utf-8",
            Content_Security_Policy="default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
            X_Frame_Options="DENY",
        )

    def _read(self, start_response: StartResponse, path: str) -> list[bytes]:
        if path == "/status.json":
            return respond(start_response, "200 OK", json.dumps(self.status()).encode(), "application/json")
        assert self.metrics is not None  # __call__ answered 404 for no metrics
        body, content_type = self.metrics.exposition()
        return respond(start_response, "200 OK", body, content_type)

    def _act(self, environ: dict[str, Any], start_response: StartResponse, region: str, action: str) -> list[bytes]:
        if not self.access.may_act(environ):
            return respond(
                start_response, "403 Forbidden", b"refused: send the admin token, or act from this host's page\n", "text/plain"
            )
        if region not in self.session.regions:
            return not_found(start_response)
        if action == "evacuate":
            self.session.evacuate(region)
        elif action == "restore":
            self.session.restore(region)
        elif self.lab is None:
            return not_found(start_response)  # outage controls exist only in demo mode
        elif action == "outage":
            self.lab.fault(region, "blackhole")
        else:
            self.lab.heal(region)
        if "application/json" in (_header(environ, "HTTP_ACCEPT") or ""):
            body = json.dumps({"region": region, "action": action, "breaker": self.session.replicas[region].breaker.state})
            return respond(start_response, "200 OK", body.encode(), "application/json")
        base = (_header(environ, "SCRIPT_NAME") or "").rstrip("/")
        return respond(start_response, "303 See Other", b"", "text/plain", Location=f"{base}/")


@functools.cache
def _status_template() -> str:
    return resources.files("regionproxy").joinpath("static/status.html").read_text(encoding="utf-8")

