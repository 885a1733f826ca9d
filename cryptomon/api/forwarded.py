"""The client behind a reverse proxy: ``api.trusted_proxies`` and ``api.trusted_proxy_header``.

A request whose direct peer is one of the trusted proxies is counted (rate limit, failed-auth
throttle, requests in progress, anonymous WebSocket clients, webhook throttle), logged and
audited under the address that proxy forwarded; any other peer's forwarding headers are
ignored (anybody can send them).

The forwarded address is found walking the chain from the right, the end the proxies write:
each trusted proxy appends the address of its own peer, so the first address from the right
that is not itself a trusted proxy is the client; the addresses left of it came from the
client and are never read (the leftmost is whatever the client chose to write). A value that
is not an address where the client should be found (garbage, ``unknown``, an obfuscated
RFC 7239 name) makes the request count under the peer's address, with a debug log line.

Only the configured header is read: a proxy that sets one of ``X-Forwarded-For`` and
``Forwarded`` passes the other through from the client as it came.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Literal

import structlog
from aiohttp import web

log = structlog.get_logger()

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
HeaderName = Literal["X-Forwarded-For", "Forwarded"]
_MAX_SEEN = 4096


def parse_network(entry: str) -> Network:
    """``10.0.0.5`` / ``10.0.0.0/8`` / ``fd00::/8`` -> the network; ValueError otherwise."""
    return ipaddress.ip_network(entry.strip(), strict=True)


def parse_address(text: str) -> Address | None:
    """An address as a forwarding header writes it: ``192.0.2.1``, ``192.0.2.1:4711``,
    ``2001:db8::1``, ``[2001:db8::1]`` or ``[2001:db8::1]:4711``; an IPv4-mapped IPv6 address
    as its IPv4 address. None for anything else."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not (rest[0] == ":" and rest[1:].isdigit())):
            return None
    elif text.count(":") == 1:  # IPv4 with a port
        host, _, port = text.partition(":")
        if not port.isdigit():
            return None
    else:
        host = text
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id is not None:
            return None  # a zone is local to the proxy's host: not a client's address
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
    return addr


class TrustedProxies:
    """``api.trusted_proxies``: which peers may say who the client is, and how they say it."""

    def __init__(self, entries: Iterable[str], header: HeaderName = "X-Forwarded-For") -> None:
        self.networks: tuple[Network, ...] = tuple(parse_network(e) for e in entries)
        self.header = header
        # address text -> (address, trusted) or None: parsing is most of the cost per
        # request, and the same proxies and clients come back; emptied when full
        self._seen: dict[str, tuple[str, bool] | None] = {}

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, addr: Address) -> bool:
        return any(addr in net for net in self.networks)

    def _lookup(self, text: str) -> tuple[str, bool] | None:
        """``text`` as an address (normalized) and whether it is a trusted proxy; None when
        it is not an address."""
        try:
            return self._seen[text]
        except KeyError:
            pass
        addr = parse_address(text)
        found = None if addr is None else (str(addr), self.trusts(addr))
        if len(self._seen) >= _MAX_SEEN:
            self._seen.clear()
        self._seen[text] = found
        return found

    def _trusted_peer(self, request: web.Request) -> bool:
        peer = self._lookup(request.remote or "")
        return peer is not None and peer[1]

    def _chain(self, request: web.Request) -> list[str]:
        """The forwarded addresses, first proxy's first, as written (unparsed)."""
        if self.header == "Forwarded":
            return [elem.get("for", "") for elem in request.forwarded]
        values = request.headers.getall("X-Forwarded-For", ())
        return [part for value in values for part in value.split(",")]

    def _pick(self, chain: Sequence[str]) -> tuple[int, str] | None:
        """Where in ``chain`` the client is, and its address: the rightmost address that is
        not a trusted proxy (all trusted: the leftmost). None when the value there is not an
        address."""
        found: tuple[int, str] | None = None
        for i in range(len(chain) - 1, -1, -1):
            entry = self._lookup(chain[i].strip())
            if entry is None:
                return None
            found = (i, entry[0])
            if not entry[1]:
                break
        return found

    def client(self, request: web.Request) -> str:
        """The client address of ``request``: its peer's, or the one a trusted peer forwarded."""
        peer = request.remote or "unknown"
        if not self._trusted_peer(request):
            return peer
        chain = self._chain(request)
        if not chain:
            return peer  # the proxy's own request (a health check): its address
        picked = self._pick(chain)
        if picked is None:
            log.debug(
                "api.forwarded_malformed",
                header=self.header,
                value=",".join(chain)[-200:],
                peer=peer,
            )
            return peer
        return picked[1]

    def secure(self, request: web.Request) -> bool:
        """True when a trusted proxy says the client reached it over HTTPS: ``proto=`` of the
        ``Forwarded`` element that names the client, or the rightmost ``X-Forwarded-Proto``
        value (the nearest proxy's)."""
        if not self._trusted_peer(request):
            return False
        if self.header == "Forwarded":
            elems = request.forwarded
            picked = self._pick([elem.get("for", "") for elem in elems])
            return picked is not None and elems[picked[0]].get("proto", "").lower() == "https"
        values = ",".join(request.headers.getall("X-Forwarded-Proto", ()))
        return values.rpartition(",")[2].strip().lower() == "https"


PROXIES = web.AppKey("trusted_proxies", TrustedProxies)
