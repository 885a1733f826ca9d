"""A short-lived, bounded cache of serialized read responses with single-flight loading.

Concurrent identical requests share one query; a finished answer is served for ``ttl_s``
seconds. Publishing an event of a cached kind (e.g. a new ``Anomaly``) clears that kind's
entries, so the TTL only bounds the store writer's lag.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from cryptomon.api.errors import ApiError
from cryptomon.clock import Clock


class ResponseCache:
    def __init__(self, *, clock: Clock, ttl_s: float, max_entries: int) -> None:
        self.clock = clock
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], tuple[float, bytes]] = OrderedDict()
        self._inflight: dict[tuple[str, str], asyncio.Future[bytes]] = {}
        self._generation: dict[str, int] = {}
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def invalidate(self, group: str) -> None:
        """Forget every entry of ``group``; loads in flight are not stored."""
        self._generation[group] = self._generation.get(group, 0) + 1
        for key in [k for k in self._entries if k[0] == group]:
            del self._entries[key]
        for key in [k for k in self._inflight if k[0] == group]:
            del self._inflight[key]

    async def get(self, group: str, key: str, load: Callable[[], Awaitable[bytes]]) -> bytes:
        k = (group, key)
        now = self.clock.monotonic()
        hit = self._entries.get(k)
        if hit is not None and now - hit[0] < self.ttl_s:
            self.hits += 1
            return hit[1]
        fut = self._inflight.get(k)
        if fut is not None:
            self.hits += 1
            return await asyncio.shield(fut)
        self.misses += 1
        gen = self._generation.get(group, 0)
        fut = asyncio.get_running_loop().create_future()
        self._inflight[k] = fut
        try:
            body = await load()
        except asyncio.CancelledError:
            # the loading request went away (timeout, client gone): its waiters get a 503
            if not fut.done():
                fut.set_exception(
                    ApiError(
                        503,
                        "the shared query was cancelled; try again",
                        code="timeout",
                        headers={"Retry-After": "1"},
                    )
                )
                fut.exception()
            raise
        except BaseException as exc:
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            if self._inflight.get(k) is fut:
                del self._inflight[k]
        fut.set_result(body)
        if self._generation.get(group, 0) == gen:
            self._entries[k] = (now, body)
            self._entries.move_to_end(k)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
                self.evictions += 1
        return body
