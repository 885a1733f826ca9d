"""What the dashboard reads beyond the other route modules: the markets overview, stored
fills, the equity curve with its drawdown, the SL/TP levels of open positions and the
process resources."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from cryptomon.api import models_dashboard as md
from cryptomon.api.routing import Call, RouteTable
from cryptomon.api.services import CLOCK, FEEDS, MARKET, QUERIES, RESOURCES, TRADING

table = RouteTable("dashboard")
_HOUR_S = 3600.0
_SEVERITIES = ("low", "medium", "high", "critical")


async def _anomaly_counts(call: Call, exchange: str, symbol: str, since: float) -> dict[str, int]:
    queries = call.request.app.get(QUERIES)
    counts = dict.fromkeys(_SEVERITIES, 0)
    if queries is None:
        return counts
    rows, _ = await queries.anomalies(
        exchange=exchange, symbol=symbol, since=since, limit=call.ctx.config.max_page_size
    )
    for sev, n in Counter(str(_field(r, "severity")) for r in rows).items():
        counts[sev] = counts.get(sev, 0) + n
    return counts


async def _window(
    call: Call, exchange: str, symbol: str, since: float
) -> tuple[float | None, float | None]:
    """(first open, summed volume) of the stored 1m candles since ``since``."""
    queries = call.request.app.get(QUERIES)
    if queries is None:
        return None, None
    rows = await queries.candles(
        exchange=exchange, symbol=symbol, interval="1m", since=since, limit=5000
    )
    if not rows:
        return None, None
    return float(_field(rows[0], "open")), sum(float(_field(r, "volume")) for r in rows)


def _field(row: Any, name: str) -> Any:
    return row.get(name) if isinstance(row, Mapping) else getattr(row, name, None)


def _feed_health(call: Call) -> Mapping[str, Any]:
    feeds = call.request.app.get(FEEDS)
    return {} if feeds is None else feeds.health()


def _quarantined(health: Mapping[str, Any], exchange: str, symbol: str) -> int:
    per_symbol = health.get(exchange, {}).get("quarantined")
    return int(per_symbol.get(symbol, 0)) if isinstance(per_symbol, Mapping) else 0


@table.get(
    "/api/v1/markets/overview",
    scope="read",
    public=True,
    response=md.OverviewOut,
    query=md.OverviewQuery,
    needs=(MARKET,),
    description="One row per market seen: last price, change and volume over lookback_s "
    "(stored 1m candles), spread, imbalance, the market's feed state (live / stale / "
    "delisted), its quarantined bad prints, the exchange feed's state and the anomalies of the "
    "last hour by severity.",
)
async def markets_overview(call: Call) -> md.OverviewOut:
    """Every market with its price, change, spread, feed state and recent anomalies."""
    q: md.OverviewQuery = call.query
    market = call.service(MARKET)
    now = call.service(CLOCK).time()
    health = _feed_health(call)
    states = {ex: str(h.get("state", "")) for ex, h in health.items()}
    keys = [
        (ex, sym)
        for ex, sym in sorted(market.markets())
        if q.exchange is None or ex == q.exchange.lower()
    ]
    windows = await asyncio.gather(*(_window(call, ex, s, now - q.lookback_s) for ex, s in keys))
    counts = await asyncio.gather(*(_anomaly_counts(call, ex, s, now - _HOUR_S) for ex, s in keys))
    rows = []
    for (ex, sym), (first, volume), by_sev in zip(keys, windows, counts, strict=True):
        top = market.top(ex, sym)
        trades = market.trades(ex, sym, limit=1)
        last = trades[-1].price if trades else market.mid(ex, sym)
        change = None if first in (None, 0.0) or last is None else (last / first - 1.0) * 100
        rows.append(
            md.MarketRow(
                exchange=ex,
                symbol=sym,
                last=last,
                change_pct=change,
                volume=volume,
                spread_bps=top.spread_bps if top else None,
                imbalance=top.imbalance if top else None,
                stale=market.is_stale(ex, sym),
                feed_state=states.get(ex),
                state=(
                    "delisted"
                    if market.is_delisted(ex, sym)
                    else "stale"
                    if market.is_stale(ex, sym)
                    else "live"
                ),
                quarantined=_quarantined(health, ex, sym),
                anomalies=by_sev,
            )
        )
    return md.OverviewOut(lookback_s=q.lookback_s, markets=rows)


@table.get(
    "/api/v1/trading/fills",
    scope="read",
    response=md.FillsOut,
    query=md.FillsQuery,
    needs=(QUERIES,),
)
async def list_fills(call: Call) -> md.FillsOut:
    """Stored fills (executions) with the ids of their orders, newest first."""
    q: md.FillsQuery = call.query
    rows = await call.service(QUERIES).fills(
        symbol=q.symbol, client_order_id=q.client_order_id, limit=q.limit
    )
    return md.FillsOut(fills=[md.FillOut.model_validate(r) for r in rows])


def with_drawdown(rows: Sequence[Any]) -> md.EquityOut:
    """Equity snapshots with the drawdown below the running peak at each point."""
    peak = Decimal(0)
    worst = 0.0
    points = []
    for r in rows:
        equity = Decimal(str(_field(r, "equity")))
        peak = max(peak, equity)
        dd = float((peak - equity) / peak * 100) if peak > 0 else 0.0
        worst = max(worst, dd)
        points.append(md.EquityPoint.model_validate({**dict(r), "drawdown_pct": round(dd, 4)}))
    return md.EquityOut(points=points, max_drawdown_pct=round(worst, 4))


@table.get(
    "/api/v1/trading/equity",
    scope="read",
    response=md.EquityOut,
    query=md.EquityQuery,
    needs=(QUERIES,),
)
async def equity_curve(call: Call) -> md.EquityOut:
    """The equity curve (stored snapshots, oldest first) and its drawdown."""
    q: md.EquityQuery = call.query
    rows = await call.service(QUERIES).equity_snapshots(limit=q.limit)
    return with_drawdown([dict(r) if isinstance(r, Mapping) else vars(r) for r in rows])


@table.get(
    "/api/v1/trading/levels",
    scope="read",
    response=md.LevelsOut,
    query=md.SymbolQuery,
    needs=(TRADING, QUERIES),
    description="For each open position, its protection's current stop-loss and take-profit "
    "(a trailed stop as it stands, also after a restart); without one, those of its latest "
    "filled entry order (on its side) that carried them.",
)
async def protection_levels(call: Call) -> md.LevelsOut:
    """Stop-loss and take-profit levels of the open positions."""
    q: md.SymbolQuery = call.query
    levels = []
    for pos in call.service(TRADING).positions():
        if q.symbol is not None and pos["symbol"] != q.symbol:
            continue
        amount = Decimal(str(pos["amount"]))
        if amount == 0:
            continue
        side = "buy" if amount > 0 else "sell"
        orders = await call.service(QUERIES).orders(symbol=pos["symbol"], limit=q.limit)
        entry = next(
            (
                o
                for o in orders
                if _field(o, "exchange") == pos["exchange"]
                and _field(o, "side") == side
                and (_field(o, "stop_loss") is not None or _field(o, "take_profit") is not None)
            ),
            None,
        )
        levels.append(
            md.LevelOut(
                exchange=pos["exchange"],
                symbol=pos["symbol"],
                side=side,
                amount=str(amount),
                entry=str(pos.get("avg_price")) if pos.get("avg_price") is not None else None,
                stop_loss=_live(pos, "stop_loss") or _opt(entry, "stop_loss"),
                take_profit=_live(pos, "take_profit") or _opt(entry, "take_profit"),
                client_order_id=_field(entry, "client_order_id") if entry else None,
            )
        )
    return md.LevelsOut(levels=levels)


def _live(pos: Mapping[str, Any], name: str) -> str | None:
    """The level the engine protects ``pos`` at now (None without a protection)."""
    value = pos.get(name)
    return None if value is None else str(value)


def _opt(row: Any, name: str) -> str | None:
    value = _field(row, name) if row is not None else None
    return None if value is None else str(value)


@table.get(
    "/api/v1/system/resources",
    scope="read",
    response=md.ResourcesOut,
    needs=(RESOURCES,),
    description="The latest sample (every resources.sample_interval_s) with the configured "
    "thresholds and those crossed now.",
)
async def system_resources(call: Call) -> md.ResourcesOut:
    """Process CPU, RSS, open files, free disk of data_dir and event-loop lag."""
    return md.ResourcesOut.model_validate(dict(call.service(RESOURCES).stats()))


@table.get(
    "/api/v1/session",
    scope="read",
    public=True,
    response=md.SessionOut,
    description="Lets a client show only the controls the token allows. Anonymous (no token, "
    "api.public_read on): no scopes.",
)
async def session(call: Call) -> md.SessionOut:
    """Who the caller is and which scopes the token has."""
    p = call.principal
    return md.SessionOut(
        name=p.name,
        scopes=sorted(p.scopes),
        anonymous=p.anonymous,
        public_read=call.ctx.config.public_read,
    )
