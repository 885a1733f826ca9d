"""Trade messages in each exchange's own websocket format, for injection into recordings.

One :class:`TradeFrame` subclass per exchange of the shared recordings (class data and one
``render`` each, never an exchange-name branch in shared code). ``channel`` finds what the
message needs beyond the exchange's symbol (Bitfinex and Kraken address a subscription by
the channel id their subscribe reply carried); ``marker`` is a substring of that market's
recorded trade lines (to pick the websocket file of the market).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from typing import ClassVar


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


def _px(x: float, decimals: int) -> str:
    return f"{x:.{decimals}f}"


def _num(x: float) -> str:
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
            "p": _num(t.price),
            "q": _num(t.amount),
            "f": t.ident,
            "l": t.ident,
            "T": ms,
            "m": not t.buy,  # the buyer was the maker: a taker sell
        }
        return json.dumps({"stream": f"{t.native.lower()}@aggTrade", "data": data})

    def book_channel(self, lines: list[str], native: str) -> str | None:
        mark = self.book_marker(native, "")
        for line in lines:
            if mark in line:
                return str(json.loads(line.split(": ", 1)[1])["stream"])
        return None

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
            "b": [[_px(p, b.decimals), _num(q)] for p, q in b.bids],
            "a": [[_px(p, b.decimals), _num(q)] for p, q in b.asks],
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


class OkxFrame(TradeFrame):
    names = ("okx",)

    def marker(self, native: str, chan: str) -> str:
        return f'"channel":"trades","instId":"{native}"'

    def render(self, t: Injected) -> str:
        trade = {
            "instId": t.native,
            "tradeId": str(t.ident),
            "px": _num(t.price),
            "sz": _num(t.amount),
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
            return [[_px(p, b.decimals), _num(q), "0", "1" if q else "0"] for p, q in levels]

        # the checksum is not validated by the replay (cryptofeed's checksum_validation off)
        data = {"asks": side(b.asks), "bids": side(b.bids), "ts": str(round(b.ts * 1000))}
        msg = {"arg": {"channel": "books", "instId": b.native}, "action": "update"}
        return [json.dumps({**msg, "data": [{**data, "checksum": 0}]})]


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
            "amount": _num(t.amount),
            "price": _num(t.price),
        }
        msg = {"time": int(t.ts), "channel": "spot.trades", "event": "update", "result": result}
        return json.dumps(msg)


class BitfinexFrame(TradeFrame):
    """``[chanId, "te", [id, mts, signed amount, price]]`` on the trades channel's id."""

    names = ("bitfinex",)

    def channel(self, lines: list[str], native: str) -> str | None:
        for line in lines:
            if '"subscribed","channel":"trades"' in line and f'"symbol":"{native}"' in line:
                return str(json.loads(line.split(": ", 1)[1])["chanId"])
        return None

    def marker(self, native: str, chan: str) -> str:
        return f"[{chan},"

    def render(self, t: Injected) -> str:
        signed = t.amount if t.buy else -t.amount
        # the last element is the connection's message sequence number (conf flag SEQ_ALL)
        return json.dumps([int(t.chan), "te", [t.ident, round(t.ts * 1000), signed, t.price], 0])

    def book_channel(self, lines: list[str], native: str) -> str | None:
        for line in lines:
            if '"subscribed","channel":"book"' in line and f'"symbol":"{native}"' in line:
                return str(json.loads(line.split(": ", 1)[1])["chanId"])
        return None

    def book_marker(self, native: str, chan: str) -> str:
        return f"[{chan},"

    def render_book(self, b: BookUpdate) -> list[str]:
        """One ``[chanId, [price, count, amount], seq]`` per level: count 0 deletes, the
        amount's sign is the side."""
        out = []
        for levels, sign in ((b.bids, 1.0), (b.asks, -1.0)):
            for price, size in levels:
                row = [float(_px(price, b.decimals)), 1 if size else 0, sign * (size or 1.0)]
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


class KrakenFrame(TradeFrame):
    """``[channelID, [[price, volume, time, side, type, misc]], "trade", pair]``."""

    names = ("kraken",)

    def channel(self, lines: list[str], native: str) -> str | None:
        for line in lines:
            if '"channelName":"trade"' in line and f'"pair":"{native}"' in line:
                return str(json.loads(line.split(": ", 1)[1])["channelID"])
        return None

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
            upd["a"] = [[_px(p, b.decimals), f"{q:.8f}", stamp] for p, q in b.asks]
        if b.bids:
            upd["b"] = [[_px(p, b.decimals), f"{q:.8f}", stamp] for p, q in b.bids]
        upd["c"] = "0"  # the checksum is not validated by the replay
        return [json.dumps([int(cid), upd, name, b.native])]


class HuobiSwapFrame(TradeFrame):
    """gzip-compressed JSON, recorded as a Python bytes literal."""

    names = ("huobi_swap", "huobi_dm")

    def marker(self, native: str, chan: str) -> str:
        return "b'"  # compressed: every line of the file looks alike

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
        return repr(gzip.compress(json.dumps(msg).encode(), mtime=0))


FRAMES: dict[str, TradeFrame] = {
    name: frame()
    for frame in (BinanceFrame, OkxFrame, GateioFrame, BitfinexFrame, KrakenFrame, HuobiSwapFrame)
    for name in frame.names
}


def frame_for(exchange: str) -> TradeFrame:
    """The trade format of ``exchange`` (base frame: not injectable)."""
    return FRAMES.get(exchange.lower(), TradeFrame())
