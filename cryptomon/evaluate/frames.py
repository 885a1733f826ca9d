"""Trade messages in each exchange's own websocket format, for injection into recordings.

One :class:`TradeFrame` subclass per exchange of the shared recordings (class data and one
``render`` each, never an exchange-name branch in shared code). ``channel`` finds what the
message needs beyond the exchange's symbol (Bitfinex and Kraken address a subscription by
the channel id their subscribe reply carried); ``marker`` is a substring of that market's
recorded trade lines (to pick the websocket file of the market). ``render_book`` writes book
levels, ``shift`` rewrites a recorded trade, book or ticker message of a market with its
prices moved (a persistent price jump), ``overlay`` applies levels to a recorded whole book.
"""

from __future__ import annotations

import ast
import gzip
import json
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
        return _px(float(price) * self.factor, self.decimals)


def _px(x: float, decimals: int) -> str:
    return f"{x:.{decimals}f}"


def _shift_rows(rows: Any, s: Shift, key: int | str = 0) -> None:
    """Move the price at ``key`` of every row (levels or trades) in place."""
    for row in rows or ():
        row[key] = s.px(row[key])


def _shift_keys(obj: dict[str, Any], s: Shift, *keys: str) -> None:
    for k in keys:
        if obj.get(k) not in (None, ""):
            obj[k] = s.px(obj[k])


def _dump(msg: Any) -> str:
    return json.dumps(msg, separators=(",", ":"))


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

    def shift(self, payload: str, s: Shift) -> str | None:
        """``payload`` (a recorded message) with the prices of ``s``'s market moved (None:
        not a trade, book or ticker message of that market; the base: nothing is moved)."""
        return None

    full_books: ClassVar[bool] = False  # every book message is the whole book (Huobi)

    def overlay(self, payload: str, b: BookUpdate) -> str | None:
        """For venues that send whole books: the recorded book message ``payload`` of
        ``b``'s market with ``b``'s levels applied (None: not such a message)."""
        return None


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

    def shift(self, payload: str, s: Shift) -> str | None:
        if f'"s":"{s.native}"' not in payload:
            return None
        msg = json.loads(payload)
        data = msg.get("data")
        if not isinstance(data, dict) or data.get("s") != s.native:
            return None
        kind = data.get("e")
        if kind == "aggTrade":
            _shift_keys(data, s, "p")
        elif kind == "depthUpdate":
            _shift_rows(data.get("b"), s)
            _shift_rows(data.get("a"), s)
        elif kind == "bookTicker":
            _shift_keys(data, s, "b", "a")
        else:
            return None
        return _dump(msg)


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

    def shift(self, payload: str, s: Shift) -> str | None:
        if f'"instId":"{s.native}"' not in payload:
            return None
        msg = json.loads(payload)
        arg = msg.get("arg") or {}
        if arg.get("instId") != s.native or "data" not in msg:
            return None
        for item in msg["data"]:
            if arg.get("channel") == "trades":
                _shift_keys(item, s, "px")
            elif arg.get("channel") == "books":
                _shift_rows(item.get("bids"), s)
                _shift_rows(item.get("asks"), s)
            elif arg.get("channel") == "tickers":
                _shift_keys(item, s, "last", "bidPx", "askPx")
            else:
                return None
        return _dump(msg)


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

    prefix: ClassVar[str] = "spot"

    def book_channel(self, lines: list[str], native: str) -> str | None:
        mark = self.book_marker(native, "")
        return f"{self.prefix}.order_book_update" if any(mark in x for x in lines) else None

    def book_marker(self, native: str, chan: str) -> str:
        return f'"s":"{native}","U":' if self.prefix == "spot" else f'"s":"{native}","t":'

    def _levels(self, levels: tuple[tuple[float, float], ...], decimals: int) -> list[Any]:
        return [[_px(p, decimals), _num(q)] for p, q in levels]

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
        return [_dump(msg)]

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
            out.append(f"{head}: {_dump(msg)}")
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
                _shift_keys(r, s, "price")
            return _dump(msg) if mine else None
        if not isinstance(result, dict):
            return None
        if channel.endswith(".order_book_update") and result.get("s") == s.native:
            self._shift_levels(result, s)
        elif channel == "spot.tickers" and result.get("currency_pair") == s.native:
            _shift_keys(result, s, "last", "lowest_ask", "highest_bid")
        elif channel == "futures.book_ticker" and result.get("s") == s.native:
            _shift_keys(result, s, "b", "a")
        else:
            return None
        return _dump(msg)

    def _shift_levels(self, result: dict[str, Any], s: Shift) -> None:
        _shift_rows(result.get("b"), s)
        _shift_rows(result.get("a"), s)


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
            "price": _num(t.price),
            "contract": t.native,
        }
        msg = {"time": int(t.ts), "time_ms": ms, "channel": "futures.trades", "event": "update"}
        return _dump({**msg, "result": [row]})

    def _levels(self, levels: tuple[tuple[float, float], ...], decimals: int) -> list[Any]:
        return [{"p": _px(p, decimals), "s": round(q)} for p, q in levels]

    def _shift_levels(self, result: dict[str, Any], s: Shift) -> None:
        _shift_rows(result.get("b"), s, "p")
        _shift_rows(result.get("a"), s, "p")


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
        return _dump(msg)


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

    def shift(self, payload: str, s: Shift) -> str | None:
        if not payload.startswith("[") or f'"{s.native}"' not in payload:
            return None
        msg = json.loads(payload)
        if not isinstance(msg, list) or msg[-1] != s.native or len(msg) < 4:
            return None
        name = msg[-2]
        if name == "trade":
            _shift_rows(msg[1], s)
        elif isinstance(name, str) and name.startswith("book"):
            for part in msg[1:-2]:
                for key in ("a", "b", "as", "bs"):
                    _shift_rows(part.get(key), s)
        else:
            return None
        return _dump(msg)


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
                key = float(_px(p, b.decimals))
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


FRAMES: dict[str, TradeFrame] = {
    name: frame()
    for frame in (
        BinanceFrame,
        OkxFrame,
        GateioFrame,
        GateioFuturesFrame,
        BitfinexFrame,
        KrakenFrame,
        HuobiSwapFrame,
    )
    for name in frame.names
}


def frame_for(exchange: str) -> TradeFrame:
    """The trade format of ``exchange`` (base frame: not injectable)."""
    return FRAMES.get(exchange.lower(), TradeFrame())
