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
