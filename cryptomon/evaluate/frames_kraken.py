"""Kraken messages for injection into recordings (see :mod:`cryptomon.evaluate.frames`)."""

from __future__ import annotations

import json

from cryptomon.evaluate.frame_base import (
    BookUpdate,
    Injected,
    Shift,
    TradeFrame,
    dump,
    price_text,
    shift_rows,
    subscribed_field,
)


class KrakenFrame(TradeFrame):
    """``[channelID, [[price, volume, time, side, type, misc]], "trade", pair]``."""

    names = ("kraken",)

    def channel(self, lines: list[str], native: str) -> str | None:
        return subscribed_field(
            lines, '"channelName":"trade"', f'"pair":"{native}"', key="channelID"
        )

    def marker(self, native: str, chan: str) -> str:
        return f'"trade","{native}"'

    def render(self, t: Injected) -> str:
        row = [f"{t.price:.8f}", f"{t.amount:.8f}", f"{t.ts:.6f}", "b" if t.buy else "s", "m", ""]
        return json.dumps([int(t.chan), [row], "trade", t.native])

    def book_channel(self, lines: list[str], native: str) -> str | None:
        for line in lines:
            if '"channelName":"book-' in line and f'"pair":"{native}"' in line:
                msg = json.loads(line.split(": ", 1)[1])
                return f"{msg['channelID']}:{msg['channelName']}"
        return None

    def book_marker(self, native: str, chan: str) -> str:
        return f'"{chan.split(":", 1)[1]}","{native}"'

    def render_book(self, b: BookUpdate) -> list[str]:
        cid, name = b.chan.split(":", 1)
        stamp = f"{b.ts:.6f}"
        upd: dict[str, object] = {}
        if b.asks:
            upd["a"] = [[price_text(p, b.decimals), f"{q:.8f}", stamp] for p, q in b.asks]
        if b.bids:
            upd["b"] = [[price_text(p, b.decimals), f"{q:.8f}", stamp] for p, q in b.bids]
        upd["c"] = "0"  # the checksum is not validated by the replay
        return [json.dumps([int(cid), upd, name, b.native])]

    def shift(self, payload: str, s: Shift) -> str | None:
        if not payload.startswith("[") or f'"{s.native}"' not in payload:
            return None
        msg = json.loads(payload)
        if not isinstance(msg, list) or msg[-1] != s.native or len(msg) < 4:
            return None
        name = msg[-2]
        if name == "trade":
            shift_rows(msg[1], s)
        elif isinstance(name, str) and name.startswith("book"):
            for part in msg[1:-2]:
                for key in ("a", "b", "as", "bs"):
                    shift_rows(part.get(key), s)
        else:
            return None
        return dump(msg)
