"""Two brain processes with trading on, one trading lease, one simulated venue reached through
real ccxt: the simulator's own order log shows that only the holder places orders, that the
other takes over after the holder is killed, and that no order is ever placed twice
(DESIGN.md sections 5 and 8)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from nats.js.errors import KeyNotFoundError

from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel
from cryptomon.sim.venue import install
from cryptomon.trading.orders import client_order_id
from tests.integration.bus_support import (
    NatsServer,
    bus_section,
    free_port,
    spawn,
    terminate,
    write_config,
)
from tests.util import wait_until

pytestmark = pytest.mark.timeout(180)
KEY, SECRET = "lease-key", "lease-secret"
TOKEN = "lease-race-token-0123456789abcdef"
SYMBOL = "BTC-USDT"


def brain_config(tmp: Path, name: str, bus: dict[str, Any], sim: SimExchange, port: int) -> Path:
    return write_config(
        tmp / f"{name}.yaml",
        bus={**bus, "role": "brain", "durable": f"{bus['durable']}{name}"},
        api={"port": port, "tokens": [{"name": "t", "token": TOKEN, "scopes": ["read", "trade"]}]},
        database={"url": f"sqlite+aiosqlite:///{tmp / f'{name}.db'}"},
        trading={
            "auto_trading_enabled": True,
            "mode": "live",
            "exchange": "simulator",
            "live": {"exchange": "binance", "api_key": KEY, "secret": SECRET, "url": sim.rest_url},
        },
    )


async def lease_holder_pid(url: str, bus: dict[str, Any]) -> int | None:
    """The pid in the lease entry (``host:pid:tag``), None while nobody holds it."""
    nc = await nats.connect(url)
    try:
        kv = await nc.jetstream().key_value(bus["lease_bucket"])
        try:
            entry = await kv.get(bus["account"])
        except KeyNotFoundError:
            return None
        return int(entry.value.decode().split(":")[1]) if entry.value else None
    except Exception:  # the bucket is created by the first brain
        return None
    finally:
        await nc.close()


async def place(
    http: aiohttp.ClientSession, port: int, key: str, price: Decimal
) -> tuple[int, str]:
    """POST one manual limit buy at ``price`` (below the market: it rests) with ``key`` as its
    Idempotency-Key; the HTTP status (0: the brain does not answer) and the risk check that
    refused it ("" when accepted)."""
    body = {
        "exchange": "simulator",
        "symbol": SYMBOL,
        "side": "buy",
        "type": "limit",
        "amount": "0.0002",
        "price": str(price),
    }
    try:
        async with http.post(
            f"http://127.0.0.1:{port}/api/v1/trading/orders",
            json=body,
            headers={"Idempotency-Key": key},
        ) as resp:
            data = await resp.json()
            if resp.status != 200:
                return resp.status, str(data["error"]["details"].get("check"))
        # cancel it again: nothing rests on the venue when the holder is killed (its orders
        # would be orphans to the next holder, which cancels them and stays reducing)
        cid = data["client_order_id"]
        url = f"http://127.0.0.1:{port}/api/v1/trading/orders/{cid}"
        async with http.delete(url) as resp:
            assert resp.status == 200, await resp.text()
        return 200, ""
    except (aiohttp.ClientError, ValueError, KeyError):
        return 0, "no answer"


@pytest.mark.asyncio
async def test_two_brains_one_lease_only_the_holder_orders_on_the_venue(tmp_path: Path) -> None:
    """A collector feeds two brain processes with trading on for one account; every order
    request goes to both with the same Idempotency-Key (the same client order id). The venue's
    order log holds only the lease holder's orders; after kill -9 of the holder the other
    takes over; no client order id is ever on the venue twice and no request was accepted by
    both brains."""
    sim = SimExchange(MarketModel([SYMBOL], seed=5), interval=0.05)
    endpoints = install(sim, api_key=KEY, api_secret=SECRET, balances={"USDT": Decimal(50_000)})
    await sim.start()
    server = NatsServer(tmp_path)
    await server.start()
    bus = bus_section(server.url, lease_ttl_s=2.0, account="sim")
    collector_cfg = write_config(
        tmp_path / "collector.yaml",
        exchanges=[
            {
                "name": "simulator",
                "url": sim.rest_url,
                "symbols": [SYMBOL.replace("-", "/")],
                "subscriptions": ["trades", "orderbook", "ticker"],
            }
        ],
        bus={**bus, "collector_id": "s"},
        api={"enabled": False},
    )
    ports = {"a": free_port(), "b": free_port()}
    procs: dict[str, asyncio.subprocess.Process] = {}
    answers: dict[str, dict[str, int]] = {"a": {}, "b": {}}
    refusals: dict[str, dict[str, str]] = {"a": {}, "b": {}}
    http = aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"})
    collector = await spawn(collector_cfg, "collector")
    try:
        for name in ("a", "b"):
            cfg = brain_config(tmp_path, name, bus, sim, ports[name])
            procs[name] = await spawn(cfg, "brain")

        async def both_up() -> bool:
            for port in ports.values():
                try:
                    async with http.get(f"http://127.0.0.1:{port}/api/v1/feeds") as resp:
                        feeds = (await resp.json())["feeds"]
                except (aiohttp.ClientError, KeyError, ValueError):
                    return False
                if feeds.get("simulator", {}).get("collector") != "s":
                    return False  # no market data from the collector yet
            return True

        await wait_until(both_up, timeout=60, interval=0.2, message="brains fed by the bus")
        pids = {proc.pid: name for name, proc in procs.items()}
        holder_pid = await lease_holder_pid(server.url, bus)
        assert holder_pid in pids
        holder = pids[holder_pid]
        other = "b" if holder == "a" else "a"
        keys = (f"k{n}" for n in itertools.count())

        async def send_one() -> None:
            key = next(keys)
            bids, _ = sim.market.book(SYMBOL)
            price = (Decimal(str(bids[0][0])) * Decimal("0.97")).quantize(Decimal("0.01"))
            got = await asyncio.gather(*(place(http, ports[n], key, price) for n in ("a", "b")))
            for name, (status, check) in zip(("a", "b"), got, strict=True):
                answers[name][key] = status
                refusals[name][key] = check

        def placed(name: str) -> int:
            return sum(1 for status in answers[name].values() if status == 200)

        async def holder_traded() -> bool:
            await send_one()
            return placed(holder) >= 5

        await wait_until(holder_traded, timeout=60, interval=0.05, message="holder's orders")
        assert placed(other) == 0  # the standby refuses every request: no lease, reducing
        assert set(refusals[other].values()) == {"reducing"}
        procs[holder].send_signal(signal.SIGKILL)
        await procs[holder].wait()
        killed_at = len(answers[holder])

        async def other_traded() -> bool:
            await send_one()
            return placed(other) >= 5

        await wait_until(other_traded, timeout=60, interval=0.05, message="takeover")
        assert await lease_holder_pid(server.url, bus) == procs[other].pid
    finally:
        await http.close()
        for proc in [collector, *procs.values()]:
            if proc.returncode is None:
                with contextlib.suppress(AssertionError):
                    await terminate(proc)
        await server.stop()
        await sim.stop()
    venue_ids = endpoints.engine.client_order_ids()
    assert len(venue_ids) == len(set(venue_ids))  # nothing placed twice on the venue
    both = [k for k in answers[holder] if answers[holder][k] == 200 == answers[other].get(k)]
    assert both == []  # no request accepted by both brains
    cid = {key: client_order_id(f"t:{key}", "manual", "manual") for key in answers["a"]}
    by_holder = [cid[k] for k, status in answers[holder].items() if status == 200]
    by_other = [cid[k] for k, status in answers[other].items() if status == 200]
    assert set(by_holder) | set(by_other) <= set(venue_ids)
    # the venue's log: the holder's orders, then the other's; never interleaved
    manual = [c for c in venue_ids if c in set(cid.values())]
    switch = manual.index(by_other[0])
    assert set(by_other) == set(manual[switch:])
    assert set(by_holder) <= set(manual[:switch])
    # after the kill only keys from then on were placed by the other brain
    assert all(int(k[1:]) >= killed_at for k, s in answers[other].items() if s == 200)
