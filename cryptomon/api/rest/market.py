"""Live market data from memory (MarketState) and candle history from the store."""

from __future__ import annotations

from cryptomon.api import models as m
from cryptomon.api.errors import not_found
from cryptomon.api.routing import Call, RouteTable
from cryptomon.api.services import MARKET, QUERIES

table = RouteTable("market")


@table.get(
    "/api/v1/market/stats",
    scope="read",
    public=True,
    response=m.MarketStatsOut,
    query=m.StatsQuery,
    needs=(MARKET,),
)
async def market_stats(call: Call) -> m.MarketStatsOut:
    """Every market seen so far: mid, spread, last trade, staleness."""
    market = call.service(MARKET)
    q: m.StatsQuery = call.query
    out = []
    for exchange, symbol in market.markets():
        if q.exchange is not None and exchange != q.exchange.lower():
            continue
        top = market.top(exchange, symbol)
        trades = market.trades(exchange, symbol, limit=1_000_000)
        last = trades[-1] if trades else None
        out.append(
            m.MarketSummary(
                exchange=exchange,
                symbol=symbol,
                mid=market.mid(exchange, symbol),
                bid=top.bid if top else None,
                ask=top.ask if top else None,
                spread_bps=top.spread_bps if top else None,
                last=last.price if last else None,
                last_trade_ts=last.ts if last else None,
                recent_trades=len(trades),
                stale=market.is_stale(exchange, symbol),
            )
        )
    return m.MarketStatsOut(markets=out)


@table.get(
    "/api/v1/market/ticker",
    scope="read",
    public=True,
    response=m.TickerOut,
    query=m.MarketQuery,
    needs=(MARKET,),
)
async def market_ticker(call: Call) -> m.TickerOut:
    """The latest ticker of one market (404 when none was received yet)."""
    q: m.MarketQuery = call.query
    market = call.service(MARKET)
    tick = market.ticker(q.exchange, q.symbol)
    if tick is None:
        raise not_found(
            f"no ticker for {q.exchange} {q.symbol}", exchange=q.exchange, symbol=q.symbol
        )
    return m.TickerOut(
        exchange=tick.exchange,
        symbol=tick.symbol,
        ts=tick.ts,
        bid=tick.bid,
        ask=tick.ask,
        last=tick.last,
        stale=market.is_stale(q.exchange, q.symbol),
    )


@table.get(
    "/api/v1/market/orderbook",
    scope="read",
    public=True,
    response=m.OrderbookOut,
    query=m.OrderbookQuery,
    needs=(MARKET,),
)
async def market_orderbook(call: Call) -> m.OrderbookOut:
    """The live top N levels of one market's book (404 when no book was received yet)."""
    q: m.OrderbookQuery = call.query
    market = call.service(MARKET)
    snap = market.snapshot(q.exchange, q.symbol)
    top = market.top(q.exchange, q.symbol)
    if snap is None and top is None:
        raise not_found(
            f"no order book for {q.exchange} {q.symbol}", exchange=q.exchange, symbol=q.symbol
        )
    # base units, as the top's and the trades' (the feed converts a derivative's contracts),
    # with the venue's contracts beside them where the two differ (BookSnapshot's convention)
    if snap is not None:
        bids, asks, ts = list(snap.bids[: q.depth]), list(snap.asks[: q.depth]), snap.ts
        contract_bids = list(snap.contract_bids[: q.depth])
        contract_asks = list(snap.contract_asks[: q.depth])
    else:
        assert top is not None
        bids, asks, ts = [(top.bid, top.bid_size)], [(top.ask, top.ask_size)], top.ts
        contract_bids = [] if top.bid_contracts is None else [(top.bid, top.bid_contracts)]
        contract_asks = [] if top.ask_contracts is None else [(top.ask, top.ask_contracts)]
    return m.OrderbookOut(
        exchange=q.exchange,
        symbol=q.symbol,
        ts=ts,
        bids=bids,
        asks=asks,
        contract_bids=contract_bids,
        contract_asks=contract_asks,
        top=m.BookTopOut.model_validate(top) if top is not None else None,
        stale=market.is_stale(q.exchange, q.symbol),
    )


@table.get(
    "/api/v1/market/trades",
    scope="read",
    public=True,
    response=m.TradesOut,
    query=m.TradesQuery,
    needs=(MARKET,),
)
async def market_trades(call: Call) -> m.TradesOut:
    """Recent trades of one market from memory, newest last: amounts in base units, the
    venue's contracts beside them on a contract market (as the Trade events carry them)."""
    q: m.TradesQuery = call.query
    trades = call.service(MARKET).trades(q.exchange, q.symbol, limit=q.limit)
    return m.TradesOut(
        exchange=q.exchange,
        symbol=q.symbol,
        trades=[m.TradeOut.model_validate(t) for t in trades],
    )


@table.get(
    "/api/v1/market/history",
    scope="read",
    public=True,
    response=m.HistoryOut,
    query=m.HistoryQuery,
    needs=(QUERIES,),
)
async def market_history(call: Call) -> m.HistoryOut:
    """Stored candles of one market for a time range and interval."""
    q: m.HistoryQuery = call.query
    rows = await call.service(QUERIES).candles(
        exchange=q.exchange,
        symbol=q.symbol,
        interval=q.interval,
        since=q.since,
        until=q.until,
        limit=q.limit,
    )
    return m.HistoryOut(
        exchange=q.exchange,
        symbol=q.symbol,
        interval=q.interval,
        candles=[m.CandleOut.model_validate(r) for r in rows],
    )
