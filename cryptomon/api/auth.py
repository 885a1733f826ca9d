"""Bearer tokens (stored and compared as SHA-256 hashes), scopes, rate limits, auth throttling.

- ``read`` < ``trade`` < ``admin``: a token with ``admin`` may do everything, ``trade`` may also
  read. Market data and anomalies may be read anonymously with ``api.public_read: true``;
  everything else (trading, alerts, status, metrics) always needs a token with the scope.
- Per-token token-bucket rate limit (anonymous clients are limited per IP, IPv6 per /64):
  429 + Retry-After.
- Failed authentications are counted per client IP in a sliding window; past the limit that
  IP gets 429 for requests without a valid token until the window has passed, so tokens cannot
  be guessed quickly; a request with a valid token is never refused by it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Literal

from cryptomon.api.errors import ApiError
from cryptomon.clock import Clock
from cryptomon.config import ApiConfig

Scope = Literal["read", "trade", "admin"]
_IMPLIED: dict[str, frozenset[str]] = {
    "read": frozenset({"read"}),
    "trade": frozenset({"read", "trade"}),
    "admin": frozenset({"read", "trade", "admin"}),
}
# the audit actor of a credential that matched none
INVALID_TOKEN = "invalid-token"  # noqa: S105 - a label, not a secret
_MAX_TRACKED = 10_000  # bound of the per-key limiter/throttle tables (LRU evicted)


def address_key(client: str) -> str:
    """The key a client address is counted under: an IPv4 address as itself; an IPv6 one by
    its /64 (one host or subscriber holds a whole /64: counting per address let it rotate
    the last 64 bits for unlimited guesses and requests); IPv4-mapped as the IPv4."""
    if ":" not in client:  # IPv4 (the common case): no parsing
        return client
    try:
        addr = ipaddress.IPv6Address(client.split("%", 1)[0])
    except ValueError:
        return client
    if addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return f"{ipaddress.IPv6Address(int(addr) >> 64 << 64)}/64"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a configured token's name, or ``anonymous`` (public reads)."""

    name: str
    scopes: frozenset[str]
    rate_key: str
    rate_per_s: float
    burst: int

    @property
    def anonymous(self) -> bool:
        return self.name == "anonymous"


@dataclass(frozen=True, slots=True)
class _Token:
    name: str
    digest: bytes
    scopes: frozenset[str]
    rate_per_s: float
    burst: int


class TokenBucket:
    """Token buckets per key; ``take`` returns 0 when allowed, else seconds to wait."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    def take(self, key: str, rate: float, burst: int) -> float:
        now = self.clock.monotonic()
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = [float(burst), now]
            if len(self._buckets) > _MAX_TRACKED:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            b[0] = min(float(burst), b[0] + (now - b[1]) * rate)
            b[1] = now
        if b[0] >= 1.0:
            b[0] -= 1.0
            return 0.0
        return (1.0 - b[0]) / rate


class FailureThrottle:
    """Sliding-window count of failed authentications per client address."""

    def __init__(self, clock: Clock, *, limit: int, window_s: float) -> None:
        self.clock = clock
        self.limit = limit
        self.window_s = window_s
        self._fails: OrderedDict[str, deque[float]] = OrderedDict()
        self.throttled = 0

    def _window(self, key: str) -> deque[float] | None:
        q = self._fails.get(key)
        if q is None:
            return None
        cutoff = self.clock.monotonic() - self.window_s
        while q and q[0] <= cutoff:
            q.popleft()
        if not q:
            del self._fails[key]
            return None
        return q

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again; 0 when it is not throttled."""
        q = self._window(key)
        if q is None or len(q) < self.limit:
            return 0.0
        return max(0.001, q[len(q) - self.limit] + self.window_s - self.clock.monotonic())

    def failed(self, key: str) -> None:
        q = self._window(key)
        if q is None:
            q = self._fails[key] = deque(maxlen=self.limit)
            if len(self._fails) > _MAX_TRACKED:
                self._fails.popitem(last=False)
        q.append(self.clock.monotonic())


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Principal`, or raises 401/403/429."""

    def __init__(self, config: ApiConfig, *, clock: Clock) -> None:
        self.config = config
        self.tokens = [
            _Token(
                name=t.name,
                digest=bytes.fromhex(
                    t.token_sha256 or hash_token(t.token.get_secret_value() if t.token else "")
                ),
                scopes=frozenset().union(*(_IMPLIED[s] for s in t.scopes)),
                rate_per_s=t.rate_limit_per_s or config.rate_limit_per_s,
                burst=t.rate_limit_burst or config.rate_limit_burst,
            )
            for t in config.tokens
        ]
        self.limiter = TokenBucket(clock)
        self.throttle = FailureThrottle(
            clock, limit=config.auth_fail_limit, window_s=config.auth_fail_window_s
        )
        self.auth_failures = 0
        self.rate_limited = 0

    def _lookup(self, presented: str) -> _Token | None:
        # aiohttp keeps header bytes that are not UTF-8 as surrogates: hash the bytes as sent
        # (a plain encode raised, a 500 not counted by the throttle, with a traceback each)
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        found = None
        for tok in self.tokens:  # compare against every token: no early exit
            if hmac.compare_digest(digest, tok.digest):
                found = tok
        return found

    def authenticate(
        self, authorization: str | None, client: str, scope: Scope, *, public: bool = False
    ) -> Principal:
        """Check the caller for ``scope``; rate-limit it. Raises :class:`ApiError`.

        ``public``: the route serves market data or anomalies, readable without a token when
        ``api.public_read`` is on. A valid token is never refused by the failed-auth throttle
        (it only slows down guessing), so one noisy neighbour cannot lock honest users out.
        """
        client = address_key(client)
        if not authorization:
            self._check_throttle(client)
            if public and scope == "read" and self.config.public_read:
                principal = Principal(
                    "anonymous",
                    _IMPLIED["read"],
                    f"ip:{client}",
                    self.config.rate_limit_per_s,
                    self.config.rate_limit_burst,
                )
                return self._limit(principal)
            raise ApiError(401, f"a bearer token with scope '{scope}' is required")
        kind, _, presented = authorization.partition(" ")
        tok = self._lookup(presented.strip()) if kind.lower() == "bearer" else None
        if tok is None:
            self._check_throttle(client)
            self.auth_failures += 1
            self.throttle.failed(client)
            raise ApiError(
                401,
                "invalid bearer token (expected 'Authorization: Bearer <token>')",
                actor=INVALID_TOKEN,  # audited: counted, so bounded by the throttle
            )
        principal = Principal(tok.name, tok.scopes, f"token:{tok.name}", tok.rate_per_s, tok.burst)
        self._limit(principal)  # before the scope check: refusals count against the rate too
        require(principal, scope)
        return principal

    def check_throttle(self, client: str) -> None:
        """429 while ``client`` is throttled for failed authentications (any credential)."""
        self._check_throttle(address_key(client))

    def failed(self, client: str) -> None:
        """Count one failed authentication of ``client`` (a wrong webhook secret, ...)."""
        self.auth_failures += 1
        self.throttle.failed(address_key(client))

    def _check_throttle(self, client: str) -> None:
        wait = self.throttle.retry_after(client)
        if wait > 0:
            self.throttle.throttled += 1
            raise _too_many("too many failed authentications from this address", wait)

    def limit_address(self, client: str) -> None:
        """Rate-limit an unauthenticated endpoint (health, readiness, the document) per IP."""
        self._limit(
            Principal(
                "anonymous",
                frozenset(),
                f"ip:{address_key(client)}",
                self.config.rate_limit_per_s,
                self.config.rate_limit_burst,
            )
        )

    def _limit(self, principal: Principal) -> Principal:
        wait = self.limiter.take(principal.rate_key, principal.rate_per_s, principal.burst)
        if wait > 0:
            self.rate_limited += 1
            raise _too_many(f"rate limit of {principal.rate_per_s:g} requests/s exceeded", wait)
        return principal


def require(principal: Principal, scope: Scope) -> None:
    """403 unless ``principal`` holds ``scope``."""
    if scope not in principal.scopes:
        raise ApiError(
            403,
            f"token '{principal.name}' lacks scope '{scope}'",
            details={"required": scope, "granted": sorted(principal.scopes)},
            actor=principal.name,
        )


def _too_many(message: str, wait: float) -> ApiError:
    retry = max(1, math.ceil(wait))
    return ApiError(
        429, message, details={"retry_after_s": retry}, headers={"Retry-After": str(retry)}
    )
