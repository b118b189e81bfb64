"""Who may use the admin surface: peer networks, ``Host`` names, a token, same origin.

:class:`AdminAccess` allows a request when its peer address is on an
allow-list of networks (loopback by default), its ``Host`` header names an
allowed host (loopback names and addresses by default: a page that reached
this port through DNS rebinding names its own host), and, optionally, it
carries a bearer token, compared in constant time. ``REMOTE_ADDR`` is the
peer address: behind a reverse proxy, put
``werkzeug.middleware.proxy_fix.ProxyFix`` in front so it is the client's.

Actions also need the token, or a same-origin request: a browser's
``Origin`` must be this very host and port, ``Sec-Fetch-Site`` (when sent)
``same-origin``. A request that sends neither header (curl) may act only
from a loopback address.

Every header is read as a client may send it: absent, empty, malformed or
full of odd bytes. Parsing never raises; what does not parse is refused.

The parsing is by hand because werkzeug's helpers get these rules wrong
(werkzeug 3.1.9; ``tests/_web/test_admin.py`` pins each case):

- ``werkzeug.sansio.utils.host_is_trusted(host, trusted)`` (behind
  ``Request.trusted_hosts``) compares names case-sensitively and keeps a
  trailing dot (``LOCALHOST:8000`` and ``localhost.`` are refused), cuts
  every trusted entry at its first ``:`` (``[::1]`` becomes ``[``, so
  ``[::1]:8080`` is refused), refuses an unbracketed IPv6 literal (``::1``)
  and ``_`` in names, and knows no networks (``127.0.0.0/8``).
- ``werkzeug.wsgi.get_host(environ)`` (``Request.host``) returns ``""`` for
  a ``Host`` it cannot read (``localhost:99999``, ``local host``), the same as
  for no ``Host``, which is allowed from loopback: a malformed ``Host``
  would pass where it must be refused. With no ``Host`` it answers
  ``SERVER_NAME:SERVER_PORT``, so an HTTP/1.0 request would seem to name
  the server's own address; without ``wsgi.url_scheme`` it raises KeyError.
- ``werkzeug.datastructures.Authorization.from_header("Bearer a=b...")``
  reads a token with ``=`` inside as parameters (``token`` None), while an
  admin token may be any visible ASCII.
- werkzeug parses no ``Origin`` (``Request.origin`` is the raw header).
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import Any

from regionproxy.errors import ConfigError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK = ("127.0.0.0/8", "::1/128")
LOOPBACK_HOSTS = ("localhost", "127.0.0.0/8", "::1")
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


def header(environ: dict[str, Any], key: str) -> str | None:
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
        peer = _address(header(environ, "REMOTE_ADDR") or "")
        if peer is None or not _within(peer, self.networks):
            return False
        host = header(environ, "HTTP_HOST")
        if not host:  # HTTP/1.0 names no host: only this machine may omit it
            if not peer.is_loopback:
                return False
        else:
            parsed = parse_host(host)
            if parsed is None or parsed[0] not in self.hosts:
                return False
        if self._token is None:
            return True
        scheme, _, credentials = (header(environ, "HTTP_AUTHORIZATION") or "").partition(" ")
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
            peer = _address(header(environ, "REMOTE_ADDR") or "")
            return peer is not None and peer.is_loopback
        if site is not None and site not in SAME_ORIGIN:
            return False
        if origin is None:
            return True
        source = parse_origin(origin) if isinstance(origin, str) else None
        host = parse_host(header(environ, "HTTP_HOST") or "")
        if source is None or host is None:
            return False
        scheme, origin_host, origin_port = source
        name, port = host
        return origin_host == name and origin_port == (DEFAULT_PORTS[scheme] if port is None else port)
