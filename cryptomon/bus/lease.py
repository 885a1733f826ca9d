"""The single-writer trading lease (DESIGN.md sections 5 and 8).

Exactly one brain may trade per account. The lease is the key ``<account>`` in the JetStream
key-value bucket ``bus.lease_bucket`` whose entries expire ``bus.lease_ttl_s`` after they were
written. A brain takes it with ``create`` (only if nobody holds it) and renews it from the event
loop every third of the TTL with ``update`` on the revision it wrote last; any other writer
makes that update fail, and the lease is lost.

Locally the lease is valid until (time the last successful write was *sent*) + TTL - margin:
the server's entry cannot expire before that, so two brains never both consider themselves
holders. :class:`LeasedBroker` refuses every placement and cancel while the lease is not
valid (reads, i.e. reconciliation, pass), so a brain that loses it sends no order at all
within one TTL; ``on_change(held)`` tells the trading engine to go ``reducing`` / back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Literal

import structlog
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from cryptomon.bus.claim import holder_name, open_bucket
from cryptomon.bus.connect import connect
from cryptomon.clock import Clock
from cryptomon.config import BusConfig
from cryptomon.events import Fill, Notice, OrderIntent
from cryptomon.hub import Hub
from cryptomon.tasks import cancel_and_wait
from cryptomon.trading.brokers.base import (
    SEND_GUARD,
    Broker,
    BrokerOrder,
    MarketInfo,
    OrderRejectedError,
)

log = structlog.get_logger()

_MARGIN = 0.2  # of the TTL: an order decided at the end of the validity still lands inside it


class TradingLease:
    """See the module docstring."""

    name = "bus-lease"

    def __init__(
        self,
        *,
        config: BusConfig,
        clock: Clock,
        hub: Hub,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.hub = hub
        self.on_change = on_change
        self.key = config.account
        self.holder = holder_name()
        self.revision: int | None = None
        self.valid_until = -1.0
        self.other_holder: str | None = None
        self.acquired = 0
        self.lost = 0
        self.nc: Client | None = None
        self.kv: KeyValue | None = None
        self._task: asyncio.Task[None] | None = None
        self._was_held: bool | None = None
        # with the bus source: only while it consumes the market data (lease_follows_durable)
        self.eligible: Callable[[], bool] | None = None
        self._lock = asyncio.Lock()  # one write at a time (loop and renew_soon)
        self._reopen = False
        self._soon: asyncio.Task[None] | None = None

    def held(self) -> bool:
        """True while this brain may send orders."""
        return self.clock.monotonic() < self.valid_until

    async def start(self) -> None:
        self.nc = await connect(self.config, name=f"cryptomon-lease-{self.key}")
        self.kv = await self._bucket(self.nc.jetstream())
        if self.eligible is None or self.eligible():
            await self.renew()
        elif self.on_change is not None:  # the feeds start later: renew_soon when consuming
            self.on_change(False)
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=self.name)

    async def _bucket(self, js: Any) -> KeyValue:
        return await open_bucket(js, self.config)

    def renew_soon(self, _consuming: bool = True) -> None:
        """Renew now (not at the next third of the TTL): the brain began or stopped
        consuming the market data."""
        if self.kv is None or (self._soon is not None and not self._soon.done()):
            return
        self._soon = asyncio.get_running_loop().create_task(self._renew_logged())

    async def _renew_logged(self) -> None:
        try:
            await self.renew()
        except Exception as exc:
            log.warning("bus.lease_renew_error", error=repr(exc))

    async def stop(self) -> None:
        await cancel_and_wait(self._soon)
        self._soon = None
        await cancel_and_wait(self._task)
        self._task = None
        connected = self.nc is not None and self.nc.is_connected  # away: it expires
        if self.kv is not None and self.revision is not None and self.held() and connected:
            with contextlib.suppress(Exception):  # let a standby brain take over now
                await asyncio.wait_for(self.kv.delete(self.key, last=self.revision), 2.0)
                log.info("bus.lease_released", account=self.key, holder=self.holder)
        self.valid_until = -1.0
        self.revision = None
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()

    async def _loop(self) -> None:
        while True:
            await self.clock.sleep(self.config.lease_ttl_s / 3)
            try:
                await self.renew()
            except Exception as exc:  # the loop must outlive NATS trouble
                log.warning("bus.lease_renew_error", error=repr(exc))
                self._report()

    async def renew(self) -> None:
        """Take the lease if free, renew it if ours; then report a change of holding. Not
        eligible (this brain does not consume the market data): give it up."""
        async with self._lock:
            if self.eligible is not None and not self.eligible():
                await self._give_up()
            else:
                await self._renew()
        self._report()

    async def _give_up(self) -> None:
        if self.revision is not None and self.kv is not None:
            with contextlib.suppress(Exception):
                await self.kv.delete(self.key, last=self.revision)
            self.lost += 1
        self.revision = None
        self.valid_until = -1.0
        self.other_holder = "another brain (this one does not consume the market data)"

    async def _renew(self) -> None:
        assert self.kv is not None, "start() first"
        sent = self.clock.monotonic()
        value = self.holder.encode()
        try:
            if self._reopen and self.nc is not None:  # NATS may be back without its storage
                self.kv = await self._bucket(self.nc.jetstream())
                self._reopen = False
            kv = self.kv
            if self.revision is None:
                self.revision = await kv.create(self.key, value)
                self.acquired += 1
            else:
                self.revision = await kv.update(self.key, value, last=self.revision)
            self.valid_until = sent + self.config.lease_ttl_s * (1 - _MARGIN)
            self.other_holder = None
        except KeyWrongLastSequenceError:
            if self.revision is not None:
                self.lost += 1
            self.revision = None
            self.valid_until = -1.0
            self.other_holder = await self._current_holder()
        except Exception as exc:  # NATS away: the validity runs out on its own
            self._reopen = True  # the bucket opened (or made) again next time
            log.warning("bus.lease_renew_failed", account=self.key, error=repr(exc))

    async def _current_holder(self) -> str | None:
        assert self.kv is not None
        try:
            entry = await self.kv.get(self.key)
        except KeyNotFoundError:
            return None
        return entry.value.decode() if entry.value else None

    def _report(self) -> None:
        held = self.held()
        if held != self._was_held:
            self._was_held = held
            self._announce(held)
        if self.on_change is not None:
            self.on_change(held)

    def _announce(self, held: bool) -> None:
        now = self.clock.time()
        if held:
            log.info("bus.lease_acquired", account=self.key, holder=self.holder)
            message = f"this brain holds the trading lease for account {self.key}"
            level: Literal["info", "critical"] = "info"
        else:
            message = (
                f"this brain does NOT hold the trading lease for account {self.key} "
                f"(holder: {self.other_holder or 'unknown/unreachable'}): it runs WITHOUT "
                "trading, no orders are sent (risk state reducing) until it holds the lease"
            )
            log.critical("bus.lease_not_held", account=self.key, holder=self.other_holder)
            level = "critical"
        self.hub.publish(
            Notice(
                exchange="",
                symbol="",
                ts=now,
                ts_recv=now,
                code="trading_lease",
                message=message,
                level=level,
            )
        )

    def stats(self) -> dict[str, Any]:
        return {
            "account": self.key,
            "holder": self.holder,
            "held": self.held(),
            "other_holder": self.other_holder,
            "acquired": self.acquired,
            "lost": self.lost,
        }


class LeasedBroker:
    """A broker that sends orders only while ``lease`` is held; reads always pass."""

    def __init__(self, inner: Broker, *, lease: TradingLease) -> None:
        self.inner = inner
        self.lease = lease
        self.name = inner.name
        self.refused = 0

    def __getattr__(self, name: str) -> Any:  # optional broker hooks (set_listener, ...)
        return getattr(self.inner, name)

    def _gate(self, client_order_id: str) -> None:
        if not self.lease.held():
            self.refused += 1
            raise OrderRejectedError(
                client_order_id,
                f"this brain does not hold the trading lease for account {self.lease.key}",
            )

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    async def market(self, symbol: str) -> MarketInfo:
        return await self.inner.market(symbol)

    async def place_order(self, intent: OrderIntent) -> BrokerOrder:
        self._gate(intent.client_order_id)
        # checked again right before each request leaves (the venue's rate-limit gate, a slow
        # spec or leverage call can hold the order past the lease's validity)
        token = SEND_GUARD.set(functools.partial(self._gate, intent.client_order_id))
        try:
            return await self.inner.place_order(intent)
        finally:
            SEND_GUARD.reset(token)

    async def cancel_order(self, symbol: str, client_order_id: str) -> BrokerOrder:
        self._gate(client_order_id)
        token = SEND_GUARD.set(functools.partial(self._gate, client_order_id))
        try:
            return await self.inner.cancel_order(symbol, client_order_id)
        finally:
            SEND_GUARD.reset(token)

    async def fetch_order(self, symbol: str, client_order_id: str) -> BrokerOrder | None:
        return await self.inner.fetch_order(symbol, client_order_id)

    async def fetch_open_orders(self, symbol: str | None = None) -> list[BrokerOrder]:
        return await self.inner.fetch_open_orders(symbol)

    async def fetch_fills(self, symbol: str, since: float | None = None) -> list[Fill]:
        return await self.inner.fetch_fills(symbol, since)

    async def fetch_balances(self) -> dict[str, Decimal]:
        return await self.inner.fetch_balances()
