"""/metrics counts the paper broker's skipped book-mid liquidation checks: a real engine on
the paper broker with a contract position on a market without mark or trades, behind a
running API server."""

from __future__ import annotations

from decimal import Decimal

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cryptomon.events import OrderIntent
from tests.integration.api.conftest import READ, StartApi, bearer
from tests.unit.trading.helpers import book
from tests.unit.trading.test_futures_paper import EX, PERP, build, quote


@pytest.mark.asyncio
async def test_metrics_count_the_skipped_book_mid_checks(start_api: StartApi) -> None:
    """Long 0.5 at 20000.5, 5x (estimate 16100.4025): two tops wider than 2% of their mid
    (bid 1000, ask 31000) and one narrow top past the estimate waiting for its confirmation
    are counted by reason in cryptomon_paper_mid_checks_skipped; the position stays open."""
    engine, broker, hub, clock = build()
    quote(hub, clock, 20000)
    intent = OrderIntent(
        exchange=EX,
        symbol=PERP,
        ts=0.0,
        ts_recv=0.0,
        client_order_id="long",
        side="buy",
        type="market",
        amount=Decimal("0.5"),
    )
    assert (await broker.place_order(intent)).filled == Decimal("0.5")
    for _ in range(2):
        book(hub, clock, bid=1000.0, ask=31000.0, size=1.0, exchange=EX, symbol=PERP)
        clock.advance(1.0)
    quote(hub, clock, 16000)
    api = await start_api(hub=hub, market=engine.context.market, trading=engine)
    async with api.http.get(api.url + "/metrics", headers=bearer(READ)) as r:
        assert r.status == 200
        text = await r.text()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    skipped = {
        s.labels["reason"]: s.value
        for s in fams["cryptomon_paper_mid_checks_skipped"].samples
        if s.name.endswith("_total")
    }
    assert skipped == {"spread": 2.0, "unconfirmed": 1.0}
    assert await broker.fetch_positions() == {PERP: Decimal("0.5")}
