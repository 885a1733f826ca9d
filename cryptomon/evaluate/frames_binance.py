"""Binance messages for injection into recordings (see :mod:`cryptomon.evaluate.frames`)."""

from __future__ import annotations

import json
from collections.abc import Callable

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
    subscribed_field,
)


class BinanceFrame(TradeFrame):
    """Combined-stream ``aggTrade`` (spot and USD-M futures)."""

    names = ("binance", "binance_futures", "binance_us", "binance_delivery")

    def marker(self, native: str, chan: str) -> str:
        return f'"s":"{native}"'

    def render(self, t: Injected) -> str:
        ms = round(t.ts * 1000)
        data = {
            "e": "aggTrade",
            "E": ms,
            "a": t.ident,
            "s": t.native,
            "p": num_text(t.price),
            "q": num_text(t.amount),
            "f": t.ident,
            "l": t.ident,
            "T": ms,
            "m": not t.buy,  # the buyer was the maker: a taker sell
        }
        return json.dumps({"stream": f"{t.native.lower()}@aggTrade", "data": data})

    def book_channel(self, lines: list[str], native: str) -> str | None:
        mark = self.book_marker(native, "")
        return subscribed_field(lines, mark, key="stream")

    def book_marker(self, native: str, chan: str) -> str:
        return f'"s":"{native}","U":'

    def render_book(self, b: BookUpdate) -> list[str]:
        """A ``depthUpdate`` whose update ids :meth:`resequence` fills in from the message
        before it (``U``/``u``/``pu`` = -1 until then)."""
        ms = round(b.ts * 1000)
        data = {
            "e": "depthUpdate",
            "E": ms,
            "T": ms,
            "s": b.native,
            "U": -1,
            "u": -1,
            "pu": -1,
            "b": [[price_text(p, b.decimals), num_text(q)] for p, q in b.bids],
            "a": [[price_text(p, b.decimals), num_text(q)] for p, q in b.asks],
        }
        return [json.dumps({"stream": b.chan, "data": data})]

    def resequence(self, lines: list[str]) -> list[str]:
        """An injected ``depthUpdate`` takes the ids that chain it to the symbol's previous
        update without moving the chain: futures ``pu = U = u`` = the previous final id (the
        next recorded message's ``pu`` still matches), spot ``U`` = that id + 1 and ``u`` =
        that id (the next recorded ``U`` is still the id + 1)."""
        last: dict[str, int] = {}
        chained: dict[str, bool] = {}  # the symbol's recorded updates carry "pu" (futures)
        out = []
        for line in lines:
            head, sep, payload = line.partition(": ")
            if not sep or '"depthUpdate"' not in payload or head.startswith("wss"):
                out.append(line)
                continue
            msg = json.loads(payload)
            data = msg["data"]
            sym = data["s"]
            if data["u"] != -1:
                last[sym] = data["u"]
                chained[sym] = "pu" in data
                out.append(line)
                continue
            prev = last.get(sym)
            if prev is None:  # before the symbol's first update: nothing to chain to
                continue
            if chained[sym]:
                data["U"] = data["u"] = data["pu"] = prev
            else:
                data.pop("pu", None)
                data.pop("T", None)
                data["U"], data["u"] = prev + 1, prev
            out.append(f"{head}: {json.dumps(msg, separators=(',', ':'))}")
        return out

    def shift(self, payload: str, s: Shift) -> str | None:
        if f'"s":"{s.native}"' not in payload:
            return None
        msg = json.loads(payload)
        data = msg.get("data")
        if not isinstance(data, dict) or data.get("s") != s.native:
            return None
        kind = data.get("e")
        if kind == "aggTrade":
            shift_keys(data, s, "p")
        elif kind == "depthUpdate":
            shift_rows(data.get("b"), s)
            shift_rows(data.get("a"), s)
        elif kind == "bookTicker":
            shift_keys(data, s, "b", "a")
        else:
            return None
        return dump(msg)

    def leave_out(self, lines: list[str], gone: Callable[[str], bool]) -> list[str]:
        """Left out; a market's next ``depthUpdate`` chained to its last kept one."""
        return chain_after_gaps(lines, gone, '"depthUpdate"', lambda msg: msg.get("data"))
