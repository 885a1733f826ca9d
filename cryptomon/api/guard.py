"""Request guards shared by REST and WebSocket: the ``Host`` check (DNS rebinding), the
WebSocket ``Origin`` check, response hardening headers and the audit of denied attempts."""

from __future__ import annotations

import json

from aiohttp import web

from cryptomon.api.errors import ApiError
from cryptomon.api.forwarded import PROXIES
from cryptomon.api.services import CLOCK, HUB
from cryptomon.config import ApiConfig
from cryptomon.events import AuditEntry

_LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


def allowed_hosts(config: ApiConfig) -> frozenset[str]:
    """``api.allowed_hosts``, or by default the bind address, localhost and 127.0.0.1."""
    names = config.allowed_hosts or [config.host, *_LOCAL_NAMES]
    return frozenset(n.strip().strip("[]").lower() for n in names)


def host_name(host: str) -> str:
    """``example.com:8080`` -> ``example.com``; ``[::1]:8080`` -> ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else host
    if host.count(":") == 1:
        return host.partition(":")[0]
    return host


def check_host(request: web.Request, allowed: frozenset[str]) -> None:
    """421 unless the ``Host`` header names this server (a rebound DNS name does not)."""
    given = request.headers.get("Host")
    if given is None or "*" in allowed:
        return  # no Host (HTTP/1.0 tools): no browser sends such a request
    if host_name(given) not in allowed:
        # the allowed names stay unsaid: a scan by IP address would learn the server's names
        raise ApiError(
            421, f"Host {given!r} is not one of api.allowed_hosts", code="host_not_allowed"
        )


def check_origin(request: web.Request, cors_origins: list[str]) -> None:
    """403 for a WebSocket upgrade from a page of another origin (cross-site hijacking).
    Allowed: no ``Origin`` (not a browser), the same origin, or one of ``api.cors_origins``."""
    origin = request.headers.get("Origin")
    if origin is None or "*" in cors_origins or origin in cors_origins:
        return
    scheme, _, rest = origin.partition("://")
    if scheme in ("http", "https") and rest.lower() == request.headers.get("Host", "").lower():
        return
    raise ApiError(
        403,
        f"WebSocket origin {origin!r} is neither this server nor in api.cors_origins",
        code="origin_not_allowed",
    )


HSTS = "max-age=31536000"
"""One year; no ``includeSubDomains``: the daemon does not speak for the domain's other hosts."""


async def harden(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: no version banner, nothing cached by browsers or proxies; over
    TLS (the server's own, or up to a proxy of ``api.trusted_proxies``), HSTS (a browser that
    has seen the dashboard over HTTPS never sends its token over plain HTTP to the same host,
    e.g. through a downgrading network)."""
    response.headers["Server"] = "cryptomon"
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if request.secure or _forwarded_secure(request):
        response.headers.setdefault("Strict-Transport-Security", HSTS)


def _forwarded_secure(request: web.Request) -> bool:
    """HTTPS up to a reverse proxy of ``api.trusted_proxies`` (``X-Forwarded-Proto`` or the
    ``Forwarded`` proto=); any other peer's word is not taken."""
    proxies = request.app.get(PROXIES)
    return proxies is not None and bool(proxies) and proxies.secure(request)


def audit_denied(request: web.Request, err: ApiError) -> None:
    """Publish an ``AuditEntry`` for a refused attempt by a caller who showed a token: a 403
    naming the token (scope), or a 401 for a token that matched none (guessing; bounded by the
    failed-auth throttle). Anonymous refusals are only logged (``api.request``), so nobody can
    fill the audit log without a token. Client address and request id come from the
    request's audit origin."""
    # only refusals that name an actor: a 401 carries one when the credential was checked
    # and counted by the failed-auth throttle (a ?token= on a REST route or an empty
    # Authorization header is anonymous: unbounded, so never a row)
    actor = err.actor
    if actor is None or err.status not in (401, 403):
        return
    hub = request.app.get(HUB)
    clock = request.app.get(CLOCK)
    if hub is None or clock is None:
        return
    now = clock.time()
    payload = {"method": request.method, "path": request.path, "status": err.status}
    payload["reason"] = err.message
    hub.publish(
        AuditEntry(
            exchange="",
            symbol="",
            ts=now,
            ts_recv=now,
            actor=actor,
            action="denied",
            payload=json.dumps(payload, sort_keys=True),
        )
    )
