"""Bitfinex messages for injection into recordings (see :mod:`cryptomon.evaluate.frames`)."""

from __future__ import annotations

import json

from cryptomon.evaluate.frame_base import (
    BookUpdate,
    Injected,
    Shift,
    TradeFrame,
    dump,
    price_text,
    subscribed_field,
)


class BitfinexFrame(TradeFrame):
    """``[chanId, "te", [id, mts, signed amount, price]]`` on the trades channel's id."""

    names = ("bitfinex",)

    def channel(self, lines: list[str], native: str) -> str | None:
        return subscribed_field(
            lines, '"subscribed","channel":"trades"', f'"symbol":"{native}"', key="chanId"
        )

    def marker(self, native: str, chan: str) -> str:
        return f"[{chan},"

    def render(self, t: Injected) -> str:
        signed = t.amount if t.buy else -t.amount
        # the last element is the connection's message sequence number (conf flag SEQ_ALL)
        return json.dumps([int(t.chan), "te", [t.ident, round(t.ts * 1000), signed, t.price], 0])

    def book_channel(self, lines: list[str], native: str) -> str | None:
        return subscribed_field(
            lines, '"subscribed","channel":"book"', f'"symbol":"{native}"', key="chanId"
        )

    def book_marker(self, native: str, chan: str) -> str:
        return f"[{chan},"

    def render_book(self, b: BookUpdate) -> list[str]:
        """One ``[chanId, [price, count, amount], seq]`` per level: count 0 deletes, the
        amount's sign is the side."""
        out = []
        for levels, sign in ((b.bids, 1.0), (b.asks, -1.0)):
            for price, size in levels:
                row = [float(price_text(price, b.decimals)), 1 if size else 0, sign * (size or 1.0)]
                out.append(json.dumps([int(b.chan), row, 0]))
        return out

    def resequence(self, lines: list[str]) -> list[str]:
        """Renumber the channel messages (lists ending with a sequence number) from the
        first recorded number on, so an inserted message is not a gap."""
        out, seq = [], None
        for line in lines:
            head, sep, payload = line.partition(": ")
            if not sep or not payload.startswith("[") or head.startswith("wss"):
                out.append(line)
                continue
            msg = json.loads(payload)
            if not isinstance(msg[-1], int):
                out.append(line)
                continue
            seq = msg[-1] if seq is None else seq + 1
            msg[-1] = seq
            out.append(f"{head}: {json.dumps(msg, separators=(',', ':'))}")
        return out

    def shift(self, payload: str, s: Shift) -> str | None:
        if not payload.startswith("["):
            return None
        msg = json.loads(payload)
        if not isinstance(msg, list) or len(msg) < 2:
            return None
        chan = str(msg[0])
        if chan == s.chan and msg[1] in ("te", "tu") and isinstance(msg[2], list):
            msg[2][3] = float(s.px(msg[2][3]))
        elif chan == s.chan and isinstance(msg[1], list):  # a trades snapshot
            for row in msg[1]:
                row[3] = float(s.px(row[3]))
        elif chan == s.book_chan and isinstance(msg[1], list) and msg[1]:
            rows = msg[1] if isinstance(msg[1][0], list) else [msg[1]]
            for row in rows:
                row[0] = float(s.px(row[0]))
        else:
            return None
        return dump(msg)
