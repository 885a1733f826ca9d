"""The injection frame's data (:class:`Injected` trades, :class:`BookUpdate` levels,
:class:`Shift` price moves) and the base :class:`TradeFrame` every venue's frame extends
(:mod:`cryptomon.evaluate.frames` lists them)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class Injected:
    """One trade to write: the exchange's symbol, its channel id, price, amount, side, time
    (epoch seconds) and a trade id."""

    native: str
    chan: str
    price: float
    amount: float
    buy: bool
    ts: float
    ident: int


@dataclass(frozen=True, slots=True)
class BookUpdate:
    """Levels to write into one market's book: (price, size in the venue's units); size 0
    deletes the level. ``decimals``: how the venue prints the market's prices."""

    native: str
    chan: str
    ts: float
    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]
    decimals: int
    # the market's whole book before the update, for venues that send full books (Huobi)
    base: tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]] | None = None


@dataclass(frozen=True, slots=True)
class Shift:
    """A persistent price move: every trade price and book level of ``native`` (trades on
    ``chan``, book on ``book_chan``) recorded from receipt ``start`` on is x ``factor``."""

    native: str
    chan: str | None
    book_chan: str | None
    start: float
    factor: float
    decimals: int

    def px(self, price: Any) -> str:
        """A recorded price (string or number) moved, as the venue prints it."""
        return price_text(float(price) * self.factor, self.decimals)


def price_text(x: float, decimals: int) -> str:
    """A price as a venue prints it, with ``decimals`` decimals."""
    return f"{x:.{decimals}f}"


def subscribed_field(lines: list[str], *needles: str, key: str) -> str | None:
    """``key`` of the JSON payload of the first recorded line holding every one of
    ``needles`` (a venue's subscription answer naming a channel), as text; None: no such line."""
    for line in lines:
        if all(n in line for n in needles):
            return str(json.loads(line.split(": ", 1)[1])[key])
    return None


def shift_rows(rows: Any, s: Shift, key: int | str = 0) -> None:
    """Move the price at ``key`` of every row (levels or trades) in place."""
    for row in rows or ():
        row[key] = s.px(row[key])


def shift_keys(obj: dict[str, Any], s: Shift, *keys: str) -> None:
    """Move the prices under ``keys`` of ``obj`` in place (absent or empty: left)."""
    for k in keys:
        if obj.get(k) not in (None, ""):
            obj[k] = s.px(obj[k])


def chain_after_gaps(
    lines: list[str],
    gone: Callable[[str], bool],
    kind: str,
    body: Callable[[Any], Any],
) -> list[str]:
    """``lines`` without those ``gone`` says, where a market's book updates (messages holding
    ``kind``, whose ``body(msg)`` is a dict with the market ``s`` and the update ids ``U``/
    ``u``, futures also ``pu``) are chained: the market's first update after some of its own
    were left out chains to its last kept one (``pu`` = its ``u``, else ``U`` = its ``u`` + 1),
    as the venue's next update after a quiet spell does."""
    last: dict[str, int] = {}
    broken: set[str] = set()
    out = []
    for line in lines:
        head, sep, payload = line.partition(": ")
        msg = (
            json.loads(payload) if sep and kind in payload and not head.startswith("wss") else None
        )
        data = None if msg is None else body(msg)
        if not isinstance(data, dict) or "u" not in data:
            data = None
        if gone(line):
            if data is not None:
                broken.add(data["s"])
            continue
        if data is not None:
            sym = data["s"]
            if sym in broken and sym in last:
                broken.discard(sym)
                if "pu" in data:
                    data["pu"] = last[sym]
                else:
                    data["U"] = last[sym] + 1
                line = f"{head}: {dump(msg)}"  # noqa: PLW2901 - the line as rewritten
            last[sym] = data["u"]
        out.append(line)
    return out


def dump(msg: Any) -> str:
    """Compact JSON, as the venues send it."""
    return json.dumps(msg, separators=(",", ":"))


def num_text(x: float) -> str:
    """A number without trailing zeros (at most 10 decimals)."""
    return f"{x:.10f}".rstrip("0").rstrip(".") or "0"


class TradeFrame:
    """How one exchange sends a trade (base: nothing is injectable)."""

    names: ClassVar[tuple[str, ...]] = ()

    def channel(self, lines: list[str], native: str) -> str | None:
        """The channel id of ``native``'s trades from the recorded replies (if needed)."""
        return native

    def marker(self, native: str, chan: str) -> str:
        return native

    def render(self, t: Injected) -> str:
        raise NotImplementedError

    def book_channel(self, lines: list[str], native: str) -> str | None:
        """The channel id of ``native``'s book updates (None: books not injectable here)."""
        return None

    def book_marker(self, native: str, chan: str) -> str:
        """A substring of that market's recorded book lines."""
        return native

    def render_book(self, b: BookUpdate) -> list[str]:
        """The messages that apply ``b`` to the venue's book (a level update format)."""
        raise NotImplementedError

    def resequence(self, lines: list[str]) -> list[str]:
        """The lines of a websocket file after an insertion (for exchanges that number their
        messages; the others: unchanged)."""
        return lines

    def shift(self, payload: str, s: Shift) -> str | None:
        """``payload`` (a recorded message) with the prices of ``s``'s market moved (None:
        not a trade, book or ticker message of that market; the base: nothing is moved)."""
        return None

    def leave_out(self, lines: list[str], gone: Callable[[str], bool]) -> list[str]:
        """``lines`` of a websocket file without those ``gone`` says (a market's silence);
        where book updates are chained, the market's next update is chained to its last kept
        one, as the venue's would be after a quiet spell (the base: just left out)."""
        return [line for line in lines if not gone(line)]

    full_books: ClassVar[bool] = False  # every book message is the whole book (Huobi)

    def overlay(self, payload: str, b: BookUpdate) -> str | None:
        """For venues that send whole books: the recorded book message ``payload`` of
        ``b``'s market with ``b``'s levels applied (None: not such a message)."""
        return None
