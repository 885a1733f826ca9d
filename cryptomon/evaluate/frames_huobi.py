"""Huobi (swap) messages for injection into recordings (see :mod:`cryptomon.evaluate.frames`)."""

from __future__ import annotations

import ast
import gzip
import json
from typing import Any

from cryptomon.evaluate.frame_base import (
    BookUpdate,
    Injected,
    Shift,
    TradeFrame,
    price_text,
)


class HuobiSwapFrame(TradeFrame):
    """gzip-compressed JSON, recorded as a Python bytes literal."""

    names = ("huobi_swap", "huobi_dm")
    full_books = True

    def marker(self, native: str, chan: str) -> str:
        # compressed messages all look alike: the file is the one that subscribed the market
        return f'"sub":"market.{native}.trade.detail"'

    def book_channel(self, lines: list[str], native: str) -> str | None:
        mark = self.book_marker(native, "")
        return "depth.step0" if any(mark in x for x in lines) else None

    def book_marker(self, native: str, chan: str) -> str:
        return f'"sub":"market.{native}.depth.step0"'

    def render_book(self, b: BookUpdate) -> list[str]:
        """A whole ``depth.step0`` book: ``b``'s levels applied to its ``base`` (size 0
        deletes; without a base the book is ``b``'s levels)."""
        bids = dict(b.base[0]) if b.base else {}
        asks = dict(b.base[1]) if b.base else {}
        ms = round(b.ts * 1000)
        ch = f"market.{b.native}.depth.step0"
        tick = {"mrid": 0, "id": int(b.ts), "ts": ms, "version": int(b.ts), "ch": ch}
        return [_gz({"ch": ch, "ts": ms, "tick": self._apply(b, bids, asks, tick)})]

    def overlay(self, payload: str, b: BookUpdate) -> str | None:
        if not payload.startswith("b"):
            return None
        msg = json.loads(gzip.decompress(ast.literal_eval(payload)))
        tick = msg.get("tick") or {}
        if msg.get("ch") != f"market.{b.native}.depth.step0" or "bids" not in tick:
            return None
        bids = {float(p): float(q) for p, q in tick["bids"]}
        asks = {float(p): float(q) for p, q in tick.get("asks", ())}
        msg["tick"] = self._apply(b, bids, asks, tick)
        return _gz(msg)

    @staticmethod
    def _apply(
        b: BookUpdate, bids: dict[float, float], asks: dict[float, float], tick: dict[str, Any]
    ) -> dict[str, Any]:
        """``tick`` with the whole book ``bids``/``asks`` after ``b``'s levels."""
        for book, levels in ((bids, b.bids), (asks, b.asks)):
            for p, q in levels:
                key = float(price_text(p, b.decimals))
                if q > 0:
                    book[key] = q
                else:
                    book.pop(key, None)
        return {
            **tick,
            "bids": [[p, bids[p]] for p in sorted(bids, reverse=True)],
            "asks": [[p, asks[p]] for p in sorted(asks)],
        }

    def shift(self, payload: str, s: Shift) -> str | None:
        if not payload.startswith("b"):
            return None
        msg = json.loads(gzip.decompress(ast.literal_eval(payload)))
        ch = str(msg.get("ch", ""))
        tick = msg.get("tick") or {}
        if ch == f"market.{s.native}.trade.detail":
            for trade in tick.get("data", ()):
                trade["price"] = float(s.px(trade["price"]))
        elif ch == f"market.{s.native}.depth.step0" and "bids" in tick:
            for rows in (tick["bids"], tick.get("asks", ())):
                for row in rows:
                    row[0] = float(s.px(row[0]))
        else:
            return None
        return _gz(msg)

    def render(self, t: Injected) -> str:
        ms = round(t.ts * 1000)
        trade = {
            "amount": t.amount,
            "quantity": t.amount,
            "ts": ms,
            "id": t.ident,
            "price": t.price,
            "direction": "buy" if t.buy else "sell",
        }
        msg = {
            "ch": f"market.{t.native}.trade.detail",
            "ts": ms,
            "tick": {"id": t.ident, "ts": ms, "data": [trade]},
        }
        return _gz(msg)


def _gz(msg: Any) -> str:
    """A Huobi message as recorded: gzip-compressed JSON, written as a bytes literal."""
    return repr(gzip.compress(json.dumps(msg).encode(), mtime=0))
