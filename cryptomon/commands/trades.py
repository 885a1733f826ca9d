"""``crypto-monitor trades [--json] [--orders N]``: positions, performance and recent orders,
read from the database (the daemon need not run).

Statistics are recomputed from the stored fills and funding payments (cash from
``trading.paper.starting_balance`` in paper mode; in live mode equity and cash are the latest
stored equity snapshot), positions come from the positions table with their last mark, and the
maximum drawdown also considers the stored equity snapshots.
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from typing import Any

from cryptomon.commands.support import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    add_command,
    configured,
    open_database,
    run_async,
)
from cryptomon.decimals import plain_decimal


def register(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    p = add_command(
        subparsers,
        parent,
        "trades",
        help="show positions, trading statistics and recent orders from the database",
        handler=cmd_trades,
    )
    p.add_argument("--json", action="store_true", help="print one JSON document instead")
    p.add_argument(
        "--orders", type=int, default=10, metavar="N", help="recent orders to list (default 10)"
    )


def cmd_trades(args: argparse.Namespace) -> int:
    if not 0 <= args.orders <= 10_000:
        sys.stderr.write(f"crypto-monitor trades: --orders must be 0..10000, got {args.orders}\n")
        return EXIT_USAGE
    settings = configured(args, offline=True)  # reads the database only
    return run_async(_main(settings, args))


async def _main(settings: Any, args: argparse.Namespace) -> int:
    from sqlalchemy.exc import DBAPIError

    from cryptomon.errors import CryptomonError

    # a report: never migrates or writes
    db = await open_database(settings.database, "trades", read_only=True)
    if db is None:
        return EXIT_FAILURE
    try:
        report = await build_report(db, settings.trading, orders=args.orders)
    except (CryptomonError, DBAPIError) as exc:
        first = str(getattr(exc, "orig", None) or exc).splitlines()[:1]
        sys.stderr.write(
            f"crypto-monitor trades: cannot read {db.safe_url} ({''.join(first)}); "
            "is its schema current? (crypto-monitor db upgrade)\n"
        )
        return EXIT_FAILURE
    finally:
        await db.stop()
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2, default=str) + "\n")
    else:
        sys.stdout.write(render(report))
    return EXIT_OK


async def build_report(db: Any, trading: Any, *, orders: int = 10) -> dict[str, Any]:
    """Positions, stats and recent orders as plain data (Decimals as strings)."""
    from cryptomon.store.journal import StoreJournal
    from cryptomon.store.queries import Queries
    from cryptomon.trading.futures import terms_lookup
    from cryptomon.trading.portfolio import Portfolio

    q = Queries(db=db)
    start = Decimal(str(trading.paper.starting_balance))
    fills = await StoreJournal(db=db).fills()
    specs = await _specs(db, {f.exchange for f in fills})
    pf = Portfolio(
        quote=trading.paper.quote_currency,
        cash=start,
        terms=terms_lookup(trading, lambda ex, sym: specs.get((ex, sym))),
    )
    # the stored funding payments with the fills, in time order (as the daemon replays them)
    funding = await StoreJournal(db=db).funding_payments()
    events: list[tuple[float, int, Any]] = [(f.ts, 0, f) for f in fills]
    events += [(p.payment.ts, 1, p) for p in funding]
    events.sort(key=lambda e: (e[0], e[1]))
    for _, kind, item in events:
        if kind == 0:
            pf.apply_fill(item)
        else:
            pay = item.payment
            pf.apply_funding(pay.exchange, pay.symbol, pay.amount, item.price, pay.ts)
    positions = []
    for row in await q.positions():
        if row["amount"] == 0:
            continue
        mark = row.get("mark_price")
        if mark is not None:
            pf.mark(row["exchange"], row["symbol"], Decimal(str(mark)))
        positions.append({k: _plain(row.get(k)) for k in _POSITION_KEYS})
    snaps = await q.equity_snapshots(limit=10_000)
    peak = Decimal(0)
    dd = Decimal(str(pf.max_drawdown))
    for snap in snaps:
        eq = Decimal(str(snap["equity"]))
        peak = max(peak, eq)
        if peak > 0:
            dd = max(dd, (peak - eq) / peak)
    stats = pf.stats()
    stats["max_drawdown"] = float(dd)
    if trading.mode == "live" and snaps:  # the venue's cash, not the paper starting balance
        stats["equity"] = _plain(snaps[-1]["equity"])
        stats["cash"] = _plain(snaps[-1]["cash"])
    stats["mode"] = trading.mode
    recent = await q.orders(limit=orders) if orders else []
    return {
        "positions": positions,
        "stats": stats,
        "orders": [{k: _plain(o.get(k)) for k in _ORDER_KEYS} for o in recent],
    }


async def _specs(db: Any, exchanges: set[str]) -> dict[tuple[str, str], Any]:
    """The cached instrument specs of ``exchanges`` (contract positions need them)."""
    from cryptomon.store.instruments import InstrumentRepository

    repo = InstrumentRepository(db.sessionmaker)
    out: dict[tuple[str, str], Any] = {}
    for exchange in exchanges:
        for spec in await repo.load(exchange):
            out[(exchange, spec.symbol)] = spec
    return out


_POSITION_KEYS = (
    "exchange",
    "symbol",
    "amount",
    "avg_price",
    "mark_price",
    "unrealized_pnl",
    "realized_pnl",
    "fees",
    # perpetuals and futures (None on spot)
    "side",
    "settle",
    "contracts",
    "leverage",
    "margin_mode",
    "initial_margin",
    "maintenance_margin",
    "liquidation_price",
    "funding",
)
_ORDER_KEYS = (
    "created_at",
    "client_order_id",
    "symbol",
    "side",
    "type",
    "amount",
    "filled",
    "avg_price",
    "state",
    "origin",
)
_STAT_KEYS = (
    ("trades", "Trades"),
    ("win_rate", "Win rate"),
    ("avg_win", "Average win"),
    ("avg_loss", "Average loss"),
    ("profit_factor", "Profit factor"),
    ("max_drawdown", "Max drawdown"),
    ("sharpe", "Sharpe (per trade)"),
    ("net_pnl", "Net PnL"),
    ("realized_pnl", "Realized PnL"),
    ("unrealized_pnl", "Unrealized PnL"),
    ("fees", "Fees"),
    ("equity", "Equity"),
)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return plain_decimal(value)
    return value


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key in ("win_rate", "max_drawdown"):
        return f"{float(value) * 100:.2f}%"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, str):
        try:
            return f"{Decimal(value):.2f}"
        except ArithmeticError:
            return value
    return str(value)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out) + "\n"


def render(report: dict[str, Any]) -> str:
    """The report as plain-text tables."""
    parts = ["Positions\n"]
    if report["positions"]:
        parts.append(_positions_table(report["positions"]))
    else:
        parts.append("(no open positions)\n")
    stats = report["stats"]
    parts.append(f"\nStatistics ({stats.get('mode', '')}, {stats.get('quote_currency', '')})\n")
    parts.append(
        _table(
            ["Metric", "Value"], [[label, _fmt(key, stats.get(key))] for key, label in _STAT_KEYS]
        )
    )
    if report["orders"]:
        parts.append("\nRecent orders\n")
        parts.append(_orders_table(report["orders"]))
    return "".join(parts)


def _positions_table(positions: list[dict[str, Any]]) -> str:
    columns = (
        ("Exchange", "exchange"),
        ("Symbol", "symbol"),
        ("Amount", "amount"),
        ("Avg price", "avg_price"),
        ("Mark", "mark_price"),
        ("Unrealized", "unrealized_pnl"),
        ("Realized", "realized_pnl"),
        ("Fees", "fees"),
        ("Settle", "settle"),  # the currency of a contract's PnL, fees, margin and funding
        ("Side", "side"),
        ("Lev", "leverage"),
        ("Margin", "initial_margin"),
        ("Liq price", "liquidation_price"),
        ("Funding", "funding"),
    )
    rows = [[_cell(p.get(key)) for _, key in columns] for p in positions]
    return _table([header for header, _ in columns], rows)


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _orders_table(orders: list[dict[str, Any]]) -> str:
    headers = ["Client order id", "Symbol", "Side", "Type", "Amount", "Filled", "State", "Origin"]
    keys = ["client_order_id", "symbol", "side", "type", "amount", "filled", "state", "origin"]
    return _table(headers, [[str(o[k]) for k in keys] for o in orders])
