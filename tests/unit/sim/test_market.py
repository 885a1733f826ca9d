"""Market model: seeded determinism, consistent books, liquidity consumption, update ids."""

from __future__ import annotations

import pytest

from cryptomon.sim.market import MarketModel


def run(seed: int, steps: int = 200) -> MarketModel:
    m = MarketModel(["BTC-USDT", "ETH-USDT"], seed=seed)
    for i in range(steps):
        m.step(0.1, 1000.0 + i * 0.1)
    return m


def test_same_seed_same_market() -> None:
    """Two models with one seed produce identical books and trades; another seed differs."""
    a, b, c = run(7), run(7), run(8)
    assert a.book("BTC-USDT", 10) == b.book("BTC-USDT", 10)
    assert a.market("BTC-USDT").trade_id == b.market("BTC-USDT").trade_id
    assert a.book("BTC-USDT", 10) != c.book("BTC-USDT", 10)


def test_book_is_never_crossed_and_contiguous() -> None:
    """At every step best bid < best ask, sides best-first, one tick apart."""
    m = MarketModel(["BTC-USDT"], seed=3)
    mk = m.market("BTC-USDT")
    for i in range(300):
        m.step(0.1, float(i))
        bids, asks = m.book("BTC-USDT", 5)
        assert bids[0][0] < asks[0][0]
        assert [p for p, _ in bids] == sorted((p for p, _ in bids), reverse=True)
        assert [p for p, _ in asks] == sorted(p for p, _ in asks)
        assert round((bids[0][0] - bids[1][0]) / mk.spec.tick) == 1
        assert all(s > 0 for _, s in bids + asks)


def test_taker_trade_walks_the_book_and_is_public() -> None:
    """apply_trade consumes levels best-first and the fills become public trades."""
    m = MarketModel(["BTC-USDT"], seed=1)
    mk = m.market("BTC-USDT")
    mk.take_trades()
    _, asks = m.book("BTC-USDT", 3)
    amount = asks[0][1] + asks[1][1] / 2
    fills = m.apply_trade("BTC-USDT", "buy", amount, 5.0)
    assert [p for p, _ in fills] == [asks[0][0], asks[1][0]]
    assert sum(s for _, s in fills) == pytest.approx(amount)
    _, after = m.book("BTC-USDT", 2)
    assert after[0][0] == asks[1][0]
    assert after[0][1] == pytest.approx(asks[1][1] / 2, abs=2e-8)
    trades = mk.take_trades()
    assert [(t.price, t.side) for t in trades] == [(asks[0][0], "buy"), (asks[1][0], "buy")]


def test_changes_carry_contiguous_update_ids() -> None:
    """Successive change batches have U = previous u + 1; a skip makes a gap."""
    m = MarketModel(["BTC-USDT"], seed=2)
    mk = m.market("BTC-USDT")
    mk.take_changes()
    last = mk.update_id
    for i in range(20):
        m.step(0.1, float(i))
        ch = mk.take_changes()
        if ch is None:
            continue
        assert ch.first_id == last + 1
        assert ch.last_id >= ch.first_id
        last = ch.last_id
    mk.skip_ids(5)
    m.step(0.1, 99.0)
    ch = mk.take_changes()
    assert ch is not None
    assert ch.first_id == last + 6
