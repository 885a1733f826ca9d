"""The markets a brain's collectors watch, as their health reports them: merged across
collectors, each counting until it has been silent for three health intervals (DESIGN.md
section 8)."""

from __future__ import annotations

import time

from cryptomon.bus.source import BusFeedSource
from cryptomon.clock import ManualClock
from cryptomon.config import BusConfig
from cryptomon.hub import Hub


def test_markets_merge_across_collectors_and_age_out_with_their_silence() -> None:
    """Two collectors on one exchange: the union of their symbols; one watching any symbol
    (a recording) makes any count; a collector silent past 3 intervals drops out, and with
    none left the markets are unknown (None), not 'none watched'."""
    clock = ManualClock(time.time())
    config = BusConfig.model_validate({"role": "brain", "health_interval_s": 1.0})
    source = BusFeedSource(config=config, hub=Hub(), clock=clock)
    health = source.bus_health
    assert source.remote_markets() is None

    def report(name: str, markets: dict[str, list[str]]) -> None:
        health.report({"collector_id": name, "ts": clock.time(), "markets": markets})

    report("a", {"binance": ["BTC-USDT"], "okx": ["ETH-USDT"]})
    clock.advance(2.0)
    report("b", {"binance": ["SOL-USDT"]})
    assert source.remote_markets() == {
        "binance": frozenset({"BTC-USDT", "SOL-USDT"}),
        "okx": frozenset({"ETH-USDT"}),
    }
    report("c", {"okx": []})  # a recording: any symbol of okx
    assert source.remote_markets() == {
        "binance": frozenset({"BTC-USDT", "SOL-USDT"}),
        "okx": frozenset(),
    }
    clock.advance(1.5)  # a: silent 3.5 s > 3 intervals
    assert source.remote_markets() == {"binance": frozenset({"SOL-USDT"}), "okx": frozenset()}
    report("a", {"binance": ["BTC-USDT"]})  # back, and now without okx
    clock.advance(2.0)  # b and c silent 3.5 s
    assert source.remote_markets() == {"binance": frozenset({"BTC-USDT"})}
    clock.advance(1.5)
    assert source.remote_markets() is None
