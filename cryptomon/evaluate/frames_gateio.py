"""Gate.io (spot and futures) messages for injection into recordings (see
:mod:`cryptomon.evaluate.frames`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

from cryptomon.evaluate.frame_base import (
    BookUpdate,
    Injected,
    Shift,
    TradeFrame,
    chain_after_gaps,
    dump,
    num_text,
    price_text,
    shift_keys,
    shift_rows,
)


class GateioFrame(TradeFrame):
    names = ("gateio",)

    def marker(self, native: str, chan: str) -> str:
        return f'"currency_pair":"{native}"'

    def render(self, t: Injected) -> str:
        result = {
            "id": t.ident,
            "create_time": int(t.ts),
            "create_time_ms": f"{t.ts * 1000:.3f}",
            "side": "buy" if t.buy else "sell",
            "currency_pair": t.native,
            "amount": num_text(t.amount),
            "price": num_text(t.price),
        }
        msg = {"time": int(t.ts), "channel": "spot.trades", "event": "update", "result": result}
        return json.dumps(msg)

    prefix: ClassVar[str] = "spot"

    def book_channel(self, lines: list[str], native: str) -> str | None:
        mark = self.book_marker(native, "")
        return f"{self.prefix}.order_book_update" if any(mark in x for x in lines) else None

    def book_marker(self, native: str, chan: str) -> str:
        return f'"s":"{native}","U":' if self.prefix == "spot" else f'"s":"{native}","t":'

    def _levels(self, levels: tuple[tuple[float, float], ...], decimals: int) -> list[Any]:
        return [[price_text(p, decimals), num_text(q)] for p, q in levels]

    def render_book(self, b: BookUpdate) -> list[str]:
        """An ``order_book_update`` whose update ids :meth:`resequence` fills in from the
        market's message before it (``U``/``u`` = -1 until then)."""
        ms = round(b.ts * 1000)
        result = {
            "t": ms,
            "e": "depthUpdate",
            "E": int(b.ts),
            "s": b.native,
            "U": -1,
            "u": -1,
            "b": self._levels(b.bids, b.decimals),
            "a": self._levels(b.asks, b.decimals),
        }
        msg = {"time": int(b.ts), "channel": b.chan, "event": "update", "result": result}
        return [dump(msg)]

    def resequence(self, lines: list[str]) -> list[str]:
        """An injected update takes ``U`` = the market's previous final id + 1 and ``u`` =
        that id: cryptofeed's check (``U`` = last + 1) passes and the next recorded ``U`` is
        still last + 1 (before the market's first update: dropped, nothing to chain to)."""
        last: dict[str, int] = {}
        out = []
        for line in lines:
            head, sep, payload = line.partition(": ")
            if not sep or "order_book_update" not in payload or head.startswith("wss"):
                out.append(line)
                continue
            msg = json.loads(payload)
            result = msg.get("result")
            if not isinstance(result, dict) or "u" not in result:
                out.append(line)
                continue
            sym = result["s"]
            if result["u"] != -1:
                last[sym] = result["u"]
                out.append(line)
                continue
            prev = last.get(sym)
            if prev is None:
                continue
            result["U"], result["u"] = prev + 1, prev
            out.append(f"{head}: {dump(msg)}")
        return out

    def shift(self, payload: str, s: Shift) -> str | None:
        if f'"{s.native}"' not in payload:
            return None
        msg = json.loads(payload)
        channel = str(msg.get("channel", ""))
        result = msg.get("result")
        if msg.get("event") != "update" or not isinstance(result, dict | list):
            return None
        if channel.endswith(".trades"):
            rows = result if isinstance(result, list) else [result]
            mine = [r for r in rows if s.native in (r.get("currency_pair"), r.get("contract"))]
            for r in mine:
                shift_keys(r, s, "price")
            return dump(msg) if mine else None
        if not isinstance(result, dict):
            return None
        if channel.endswith(".order_book_update") and result.get("s") == s.native:
            self._shift_levels(result, s)
        elif channel == "spot.tickers" and result.get("currency_pair") == s.native:
            shift_keys(result, s, "last", "lowest_ask", "highest_bid")
        elif channel == "futures.book_ticker" and result.get("s") == s.native:
            shift_keys(result, s, "b", "a")
        else:
            return None
        return dump(msg)

    def _shift_levels(self, result: dict[str, Any], s: Shift) -> None:
        shift_rows(result.get("b"), s)
        shift_rows(result.get("a"), s)

    def leave_out(self, lines: list[str], gone: Callable[[str], bool]) -> list[str]:
        """Left out; a market's next ``order_book_update`` chained to its last kept one."""
        return chain_after_gaps(lines, gone, "order_book_update", lambda msg: msg.get("result"))


class GateioFuturesFrame(GateioFrame):
    """USDT futures: ``futures.*`` channels, book levels as ``{"p": price, "s": contracts}``."""

    names = ("gateio_futures",)
    prefix = "futures"

    def marker(self, native: str, chan: str) -> str:
        # the recording holds no trade: the file is the one that subscribed the market
        return f'"{native}"'

    def render(self, t: Injected) -> str:
        ms = round(t.ts * 1000)
        row = {
            "size": round(t.amount) if t.buy else -round(t.amount),
            "id": t.ident,
            "create_time": int(t.ts),
            "create_time_ms": ms,
            "price": num_text(t.price),
            "contract": t.native,
        }
        msg = {"time": int(t.ts), "time_ms": ms, "channel": "futures.trades", "event": "update"}
        return dump({**msg, "result": [row]})

    def _levels(self, levels: tuple[tuple[float, float], ...], decimals: int) -> list[Any]:
        return [{"p": price_text(p, decimals), "s": round(q)} for p, q in levels]

    def _shift_levels(self, result: dict[str, Any], s: Shift) -> None:
        shift_rows(result.get("b"), s, "p")
        shift_rows(result.get("a"), s, "p")
