"""OKX messages for injection into recordings (see :mod:`cryptomon.evaluate.frames`)."""

from __future__ import annotations

import json

from cryptomon.evaluate.frame_base import (
    BookUpdate,
    Injected,
    Shift,
    TradeFrame,
    dump,
    num_text,
    price_text,
    shift_keys,
    shift_rows,
)


class OkxFrame(TradeFrame):
    names = ("okx",)

    def marker(self, native: str, chan: str) -> str:
        return f'"channel":"trades","instId":"{native}"'

    def render(self, t: Injected) -> str:
        trade = {
            "instId": t.native,
            "tradeId": str(t.ident),
            "px": num_text(t.price),
            "sz": num_text(t.amount),
            "side": "buy" if t.buy else "sell",
            "ts": str(round(t.ts * 1000)),
        }
        return json.dumps({"arg": {"channel": "trades", "instId": t.native}, "data": [trade]})

    def book_channel(self, lines: list[str], native: str) -> str | None:
        mark = f'"channel":"books","instId":"{native}"'
        return "books" if any(mark in line for line in lines) else None

    def book_marker(self, native: str, chan: str) -> str:
        return f'"channel":"books","instId":"{native}"'

    def render_book(self, b: BookUpdate) -> list[str]:
        def side(levels: tuple[tuple[float, float], ...]) -> list[list[str]]:
            return [
                [price_text(p, b.decimals), num_text(q), "0", "1" if q else "0"] for p, q in levels
            ]

        # the checksum is not validated by the replay (cryptofeed's checksum_validation off)
        data = {"asks": side(b.asks), "bids": side(b.bids), "ts": str(round(b.ts * 1000))}
        msg = {"arg": {"channel": "books", "instId": b.native}, "action": "update"}
        return [json.dumps({**msg, "data": [{**data, "checksum": 0}]})]

    def shift(self, payload: str, s: Shift) -> str | None:
        if f'"instId":"{s.native}"' not in payload:
            return None
        msg = json.loads(payload)
        arg = msg.get("arg") or {}
        if arg.get("instId") != s.native or "data" not in msg:
            return None
        for item in msg["data"]:
            if arg.get("channel") == "trades":
                shift_keys(item, s, "px")
            elif arg.get("channel") == "books":
                shift_rows(item.get("bids"), s)
                shift_rows(item.get("asks"), s)
            elif arg.get("channel") == "tickers":
                shift_keys(item, s, "last", "bidPx", "askPx")
            else:
                return None
        return dump(msg)
