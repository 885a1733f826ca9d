"""Columnar batches of market data on the bus (DESIGN.md section 8).

One message carries the events of one ``(exchange, symbol)`` published during one event-loop
turn (or ``bus.batch_linger_s``). Layout: a 4-byte little-endian header length, a JSON header,
then the float columns as raw little-endian float64 arrays (the bulk of market data, 8 bytes a
value, no text)::

    header = {"v": 1, "c": collector_id, "q": sequence, "x": exchange, "y": symbol,
              "w": wall clock time of the encoding (epoch seconds; end-to-end lag),
              "g": [{"k": "Trade", "n": 3, "f": ["ts", "ts_recv", "price", "amount"],
                     "o": {"side": ["buy", "sell", "buy"], "trade_id": ["1", "2", "3"]}}, ...],
              "r": [0, 1, 0, ...]}   # group of each event in publication order (several groups)

A float field with a ``None`` in the batch travels in ``"o"`` (JSON) so ``None`` stays ``None``;
a NaN or infinity in such a column (or in book levels) is spelled ``"nan"``/``"inf"``/``"-inf"``
and the group names the column in ``"nf"`` (JSON has neither; it would come back ``None``).
A :class:`~cryptomon.events.FlaggedTrade` (history, bad print: stored, never alerted) travels
as the columns of its trade plus a ``flag`` column.

``decode`` rebuilds the same frozen events in the same order. The brain's cost per event is
the hub fan-out, not the decoding: each group's columns are turned into events by one
``map`` over a positional constructor per class (:mod:`cryptomon.feeds.fastevents`), with no
per-event dict or keyword call.
"""

from __future__ import annotations

import dataclasses
import math
import struct
import sys
from array import array
from collections.abc import Callable, Sequence
from itertools import chain, repeat
from math import isfinite
from typing import Any

import orjson

from cryptomon.events import MARKET_DATA, Event, FeedStatus, FlaggedTrade
from cryptomon.feeds.fastevents import factory

VERSION = 1
_LEN = struct.Struct("<I")
_LITTLE = sys.byteorder == "little"
_FLAGGED = "FlaggedTrade"


class CodecError(ValueError):
    """A bus message that is not a market-data batch of this version."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Layout:
    cls: type[Event]
    floats: tuple[str, ...]  # declared ``float`` (never None)
    others: tuple[str, ...]  # everything else except exchange/symbol
    tuples: tuple[str, ...]  # tuple fields: JSON lists turned back into tuples
    floaty: tuple[str, ...]  # other fields holding floats (``float | None``, book levels)
    optional: tuple[str, ...]  # ``float | None`` fields
    levels: tuple[str, ...]  # tuples of floats (book levels)
    names: tuple[str, ...]  # every field in declaration order (exchange, symbol first)
    make: Callable[..., Event]  # positional constructor in ``names`` order


def _layout(cls: type[Event]) -> _Layout:
    floats, others, tuples, floaty = [], [], [], []
    names = tuple(fld.name for fld in dataclasses.fields(cls))
    for fld in dataclasses.fields(cls):
        if fld.name in ("exchange", "symbol"):
            continue
        kind = str(fld.type)
        if kind == "float":
            floats.append(fld.name)
        else:
            others.append(fld.name)
            if kind.startswith("tuple"):
                tuples.append(fld.name)
            if "float" in kind:
                floaty.append(fld.name)
    if names[:2] != ("exchange", "symbol"):  # pragma: no cover - events.py's Event order
        raise TypeError(f"{cls.__name__}: exchange and symbol must be its first fields")
    return _Layout(
        cls,
        tuple(floats),
        tuple(others),
        tuple(tuples),
        tuple(floaty),
        tuple(name for name in floaty if name not in tuples),
        tuple(name for name in floaty if name in tuples),
        names,
        factory(cls, names),
    )


TRANSPORTED: tuple[type[Event], ...] = (*MARKET_DATA, FlaggedTrade, FeedStatus)
"""What a collector forwards: market data, the trades its quality layer flagged (stored by the
brain, never alerted) and its feeds' status changes (staleness)."""
LAYOUTS: dict[str, _Layout] = {
    cls.__name__: _layout(cls) for cls in TRANSPORTED if cls is not FlaggedTrade
}
_BY_CLASS: dict[type[Event], _Layout] = {lay.cls: lay for lay in LAYOUTS.values()}
_TRADE = LAYOUTS["Trade"]
_new_flagged = factory(FlaggedTrade, ("exchange", "symbol", "ts", "ts_recv", "trade", "flag"))


@dataclasses.dataclass(frozen=True, slots=True)
class Batch:
    """A decoded batch: who sent it, its sequence, and the events in order."""

    collector: str
    seq: int
    exchange: str
    symbol: str
    events: list[Event]
    kinds: dict[str, int]  # events per kind (``Trade``: 3, ...)
    sent: float = 0.0  # the collector's wall clock when it encoded the batch


def encode(
    events: Sequence[Event],
    *,
    collector: str,
    seq: int,
    exchange: str,
    symbol: str,
    sent: float = 0.0,
) -> bytes:
    """The message for ``events`` (all of ``exchange``/``symbol``, market data kinds)."""
    groups: dict[type[Event], list[Event]] = {}
    order: list[int] = []
    index: dict[type[Event], int] = {}
    for ev in events:
        cls = type(ev)
        if cls not in index:
            index[cls] = len(index)
            groups[cls] = []
        groups[cls].append(ev)
        order.append(index[cls])
    header_groups, blobs = [], []
    for cls, evs in groups.items():
        if cls is FlaggedTrade:
            header, blob = _encode_group(_TRADE, [ev.trade for ev in evs])  # type: ignore[attr-defined]
            header["k"] = _FLAGGED
            header["o"]["flag"] = [ev.flag for ev in evs]  # type: ignore[attr-defined]
        else:
            lay = _BY_CLASS.get(cls)
            if lay is None:
                raise CodecError(
                    f"{cls.__name__} is not market data (expected one of {[*LAYOUTS, _FLAGGED]})"
                )
            header, blob = _encode_group(lay, evs)
        header_groups.append(header)
        blobs.append(blob)
    head: dict[str, Any] = {
        "v": VERSION,
        "c": collector,
        "q": seq,
        "x": exchange,
        "y": symbol,
        "w": sent,
        "g": header_groups,
    }
    if len(groups) > 1:
        head["r"] = order
    raw = orjson.dumps(head)
    return b"".join([_LEN.pack(len(raw)), raw, *blobs])


def _encode_group(lay: _Layout, evs: list[Event]) -> tuple[dict[str, Any], bytes]:
    """The header entry and the packed float columns (one after the other) of one group."""
    packed, loose, flat = [], {}, []
    for name in lay.floats:
        col = [getattr(ev, name) for ev in evs]
        if None in col:
            loose[name] = col
        else:
            packed.append(name)
            flat.extend(col)
    for name in lay.others:
        loose[name] = [getattr(ev, name) for ev in evs]
    group: dict[str, Any] = {"k": lay.cls.__name__, "n": len(evs), "f": packed, "o": loose}
    floaty = lay.floaty
    if floaty and (
        not isfinite(sum(filter(None, chain.from_iterable([loose[n] for n in lay.optional]))))
        or lay.levels
    ):
        special = [name for name in floaty if not _finite(loose[name])]
    else:
        special = []
    if special:  # JSON has no NaN/inf (they would come back None): spelled as strings
        for name in special:
            loose[name] = _spell(loose[name])
        group["nf"] = special
    return group, _pack(flat)


def _finite(column: list[Any]) -> bool:
    """True when ``column`` (floats or None, or tuples of float pairs) holds no NaN/inf: one
    C-level sum (an overflow to inf only sends the column through the exact path)."""
    try:
        total = sum(filter(None, column))
    except TypeError:  # book levels
        total = sum(sum(map(sum, levels)) for levels in column)
    return math.isfinite(total)


def _spell(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)  # 'nan', 'inf', '-inf'
    if isinstance(value, (list, tuple)):
        return [_spell(item) for item in value]
    return value


def _unspell(value: Any) -> Any:
    if isinstance(value, str):
        return float(value)
    if isinstance(value, list):
        return [_unspell(item) for item in value]
    return value


def _pack(values: list[float]) -> bytes:
    column = array("d", values)
    if not _LITTLE:
        column.byteswap()
    return column.tobytes()


def _unpack(raw: bytes) -> list[float]:
    column = array("d")
    column.frombytes(raw)
    if not _LITTLE:
        column.byteswap()
    return column.tolist()


def decode(data: bytes) -> Batch:
    """The batch in ``data``; :class:`CodecError` names what is wrong with a bad message."""
    try:
        (size,) = _LEN.unpack_from(data)
        header = orjson.loads(data[4 : 4 + size])
        if header.get("v") != VERSION:
            raise CodecError(f"batch version {header.get('v')!r}, expected {VERSION}")
        exchange, symbol = header["x"], header["y"]
        offset = 4 + size
        per_group: list[list[Event]] = []
        kinds: dict[str, int] = {}
        for group in header["g"]:
            evs, offset = _decode_group(group, data, offset, exchange, symbol)
            per_group.append(evs)
            kinds[group["k"]] = len(evs)
        if offset != len(data):
            raise CodecError(f"{len(data) - offset} bytes after the last column")
        events = _interleave(per_group, header.get("r"))
        sent = float(header.get("w", 0.0))
        return Batch(header["c"], int(header["q"]), exchange, symbol, events, kinds, sent)
    except CodecError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, StopIteration, struct.error) as exc:
        raise CodecError(f"not a market-data batch ({exc!r})") from None


_Build = Callable[[list[float], dict[str, Any], str, str, int], list[Event]]
_PLANS: dict[tuple[str, ...], tuple[Any, ...]] = {}
_PLANS_MAX = 4096  # distinct (kind, packed, loose) shapes remembered


def _plan(kind: str, packed: list[str], loose: dict[str, Any]) -> tuple[Any, ...]:
    """How to build ``kind``'s events from a group with these packed float columns and these
    loose (JSON) columns: ``(build, tuples)``. ``build(flat, loose, exchange, symbol, n)`` is
    generated once per shape (a handful per venue; the same technique as
    :mod:`cryptomon.feeds.fastevents`) and passes every column straight to the positional
    constructor: a batch pays one dict lookup and one call, not a walk over field names."""
    key = (kind, *packed, "|", *loose)
    plan = _PLANS.get(key)
    if plan is not None:
        return plan
    lay = _TRADE if kind == _FLAGGED else LAYOUTS.get(kind)
    if lay is None:
        raise CodecError(f"unknown event kind {kind!r}, expected one of {[*LAYOUTS, _FLAGGED]}")
    index = {name: i for i, name in enumerate(packed)}
    one, many = [], []
    for name in lay.names[2:]:
        if name in index:
            i = index[name]
            one.append(f"flat[{i}]")
            many.append(f"flat[{i} * n:{i + 1} * n]")
        elif name in loose:
            one.append(f"loose[{name!r}][0]")
            many.append(f"loose[{name!r}]")
        else:
            raise CodecError(f"{kind}: no column {name!r}")
    extra = (set(loose) | set(packed)) - set(lay.names) - ({"flag"} if kind == _FLAGGED else set())
    if extra or len(index) != len(packed):
        raise CodecError(f"{kind}: unknown or repeated columns {sorted(extra) or packed}")
    src = (
        "def build(flat, loose, ex, sym, n):\n"
        "    if n == 1:\n"
        f"        return [make(ex, sym, {', '.join(one)})]\n"
        f"    return list(map(make, repeat(ex, n), repeat(sym, n), {', '.join(many)}))\n"
    )
    ns: dict[str, Any] = {"make": lay.make, "repeat": repeat}
    exec(src, ns)  # noqa: S102 - generated from dataclass field names and list indexes
    tuples = tuple(name for name in lay.tuples if name in loose)
    plan = (ns["build"], tuples)
    if len(_PLANS) >= _PLANS_MAX:
        _PLANS.clear()
    _PLANS[key] = plan
    return plan


def _decode_group(
    group: dict[str, Any], data: bytes, offset: int, exchange: str, symbol: str
) -> tuple[list[Event], int]:
    kind = group["k"]
    loose: dict[str, Any] = group["o"]
    packed = group["f"]
    build, tuples = _plan(kind, packed, loose)
    n = int(group["n"])
    end = offset + 8 * n * len(packed)
    if end > len(data):
        raise CodecError(f"{kind}: {len(packed)} float columns of {n} values do not fit")
    flat = _unpack(data[offset:end])
    if loose and set(map(len, loose.values())) != {n}:
        bad = next(name for name, col in loose.items() if len(col) != n)
        raise CodecError(f"{kind}: column {bad!r} has {len(loose[bad])} values, expected {n}")
    for name in group.get("nf", ()):
        if name not in loose:
            raise CodecError(f"{kind}: no column {name!r}")
        loose = dict(loose)
        loose[name] = _unspell(loose[name])
    if tuples:
        loose = dict(loose)
        for name in tuples:
            loose[name] = [tuple(map(tuple, value)) for value in loose[name]]
    events: list[Event] = build(flat, loose, exchange, symbol, n)
    if kind == _FLAGGED:
        events = [
            _new_flagged(exchange, symbol, trade.ts, trade.ts_recv, trade, flag)
            for trade, flag in zip(events, loose["flag"], strict=True)
        ]
    return events, end


def _interleave(groups: list[list[Event]], order: list[int] | None) -> list[Event]:
    if order is None:
        if len(groups) > 1:
            raise CodecError("several groups without their order ('r')")
        return groups[0] if groups else []
    iters = [iter(group) for group in groups]
    return [next(iters[g]) for g in order]
