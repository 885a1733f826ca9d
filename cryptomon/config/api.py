"""The ``api`` section: the REST + WebSocket server, its tokens and limits."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from cryptomon.config.base import Section

Scope = Literal["read", "trade", "admin"]
_DEFAULT_SCOPES: tuple[Scope, ...] = ("read",)


class TokenConfig(Section):
    """One API bearer token: its name (for logs and audit), the secret or its SHA-256, scopes."""

    name: str = Field(min_length=1, description="who holds the token (shown in logs/audit)")
    token: SecretStr | None = Field(default=None, description="the bearer token itself")
    token_sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the token"
    )
    scopes: list[Scope] = Field(
        default_factory=lambda: list(_DEFAULT_SCOPES), description="read | trade | admin"
    )
    rate_limit_per_s: float | None = Field(
        default=None, gt=0, description="requests/s for this token; None = api.rate_limit_per_s"
    )
    rate_limit_burst: int | None = Field(
        default=None, ge=1, description="burst for this token; None = api.rate_limit_burst"
    )

    @model_validator(mode="after")
    def _one_of(self) -> TokenConfig:
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError("exactly one of token, token_file or token_sha256")
        if self.token is not None and len(self.token.get_secret_value()) < 12:
            raise ValueError("a token of at least 12 characters")
        return self


class ApiConfig(Section):
    """The REST + WebSocket API server."""

    enabled: bool = Field(default=True, description="serve the API")
    host: str = Field(default="127.0.0.1", min_length=1, description="bind address")
    port: int = Field(default=8080, ge=0, le=65535, description="0 = any free port")
    tokens: list[TokenConfig] = Field(default_factory=list, description="bearer tokens")
    public_read: bool = Field(default=False, description="reads allowed without a token")
    cors_origins: list[str] = Field(default_factory=list, description="allowed CORS origins")
    cors_allow_credentials: bool = Field(
        default=False, description="send Access-Control-Allow-Credentials (never with '*')"
    )
    rate_limit_per_s: float = Field(default=20.0, gt=0, description="per token (or client IP)")
    rate_limit_burst: int = Field(default=40, ge=1, description="requests allowed at once")
    auth_fail_limit: int = Field(
        default=10, ge=1, description="failed authentications per client IP per window"
    )
    auth_fail_window_s: float = Field(default=60.0, gt=0, description="failed-auth window")
    max_body_bytes: int = Field(default=65_536, ge=1024, le=16_777_216, description="413 above")
    max_page_size: int = Field(default=500, ge=1, le=10_000, description="max 'limit' per page")
    cache_ttl_s: float = Field(
        default=0.5, ge=0, le=60, description="read response cache lifetime; 0 = off"
    )
    cache_entries: int = Field(default=256, ge=1, description="read response cache bound")
    ws_max_clients: int = Field(default=100, ge=1, description="concurrent WebSocket clients")
    ws_max_anonymous_per_ip: int = Field(
        default=8,
        ge=1,
        le=100_000,
        description="WebSocket clients without a token (public_read) per client IP (IPv6: /64)",
    )
    ws_queue_size: int = Field(default=1000, ge=1, description="events queued per client")
    ws_channel_queue_size: int = Field(
        default=10_000, ge=1, description="events queued per channel before the fan-out"
    )
    ws_send_timeout_s: float = Field(
        default=5.0, gt=0, description="a send stuck this long disconnects the client"
    )
    ws_heartbeat_s: float = Field(default=30.0, gt=0, description="WebSocket ping interval")
    request_timeout_s: float = Field(
        default=15.0, gt=0, le=600, description="a request taking longer answers 503"
    )
    shutdown_timeout_s: float = Field(default=5.0, gt=0, description="grace for open requests")
    tls_cert_file: Path | None = Field(
        default=None, description="PEM certificate (chain): serve HTTPS and WSS; with tls_key_file"
    )
    tls_key_file: Path | None = Field(default=None, description="PEM private key of tls_cert_file")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host header names answered (DNS rebinding guard); empty = the bind "
        "address, localhost, 127.0.0.1 and ::1; '*' = any",
    )
    public_read_confirm: bool = Field(
        default=False, description="required for public_read on a non-loopback address"
    )
    idle_timeout_s: float = Field(
        default=15.0,
        gt=0,
        le=3600,
        description="close a connection idle this long, or whose request headers have not "
        "all arrived by then",
    )
    max_connections: int = Field(
        default=512, ge=1, le=100_000, description="open HTTP/WebSocket connections; more: refused"
    )
    max_inflight_per_ip: int = Field(
        default=32,
        ge=1,
        le=100_000,
        description="requests one client IP (IPv6: its /64) may have in progress at once; "
        "more: 429 (WebSocket sessions count under ws_max_clients instead; the dashboard's "
        "files and /health are not counted)",
    )
    body_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="a request body not fully received this long after its headers: 408 "
        "(less than request_timeout_s)",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="reverse proxies (IP addresses or CIDR networks) whose forwarded client "
        "address is used for limits, logs and audit; empty = trust nobody",
    )
    trusted_proxy_header: Literal["X-Forwarded-For", "Forwarded"] = Field(
        default="X-Forwarded-For",
        description="the header the trusted proxies write the client address in (RFC 7239 "
        "Forwarded: its for=); only this one is read",
    )

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        for host in v:
            if not re.match(r"^(\*|\[?[A-Za-z0-9.:_-]+\]?)$", host):
                raise ValueError(f"host names like dash.example.com or 10.0.0.5, not {host!r}")
        return v

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, v: list[str]) -> list[str]:
        for i, entry in enumerate(v):
            try:
                ipaddress.ip_network(entry.strip(), strict=True)
            except ValueError:
                try:
                    suggestion = f" (did you mean {ipaddress.ip_network(entry.strip(), False)}?)"
                except ValueError:
                    suggestion = ""
                raise ValueError(
                    "each entry an IP address like 127.0.0.1 or ::1, or a CIDR network with "
                    f"no host bits set like 10.0.0.0/8 or fd00::/8 (no host names); entry {i} "
                    f"{entry!r} is neither{suggestion}"
                ) from None
        return v

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        for origin in v:
            if origin != "*" and not re.match(r"^https?://[^/\s]+$", origin):
                raise ValueError(f"origins like https://dash.example.com (no path), not {origin!r}")
        return v

    @model_validator(mode="after")
    def _check(self) -> ApiConfig:
        if self.cors_allow_credentials and "*" in self.cors_origins:
            raise ValueError("cors_origins '*' cannot be combined with cors_allow_credentials")
        names = [t.name for t in self.tokens]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"unique token names; repeated: {', '.join(sorted(dup))}")
        if self.body_timeout_s >= self.request_timeout_s:
            raise ValueError(
                f"api.body_timeout_s ({self.body_timeout_s:g} s) less than "
                f"api.request_timeout_s ({self.request_timeout_s:g} s): a body still arriving "
                "when the request deadline runs out would be answered 503 instead of 408; "
                "lower body_timeout_s or raise request_timeout_s"
            )
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together: give both or neither")
        if self.enabled and not self.tokens and not self.is_loopback:
            raise ValueError(
                f"host {self.host!r} is not a loopback address: configure api.tokens "
                "(or bind 127.0.0.1)"
            )
        public = self.enabled and self.public_read and not self.public_read_confirm
        if public and not self.is_loopback:
            raise ValueError(
                f"public_read on the non-loopback host {self.host!r} serves market data "
                "and anomalies to anyone: set api.public_read_confirm: true to confirm"
            )
        return self

    @property
    def is_loopback(self) -> bool:
        """True when every address ``host`` resolves to is a loopback address (resolved, not
        judged by its spelling: ``127.evil.example`` is a DNS name like any other)."""
        return _resolves_to_loopback(self.host)


def _resolves_to_loopback(host: str) -> bool:
    import ipaddress
    import socket

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass  # a name: resolve it
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False  # unresolvable: not provably local
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(
        ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addresses
    )
