"""Columnar batches of market data on the bus (DESIGN.md section 8).

One message carries the events of one ``(exchange, symbol)`` published during one event-loop
turn. Layout: a 4-byte little-endian header length, a JSON header, then the float columns as
raw little-endian float64 arrays (the bulk of market data, 8 bytes a value, no text)::

    header = {"v": 1, "c": collector_id, "q": sequence, "x": exchange, "y": symbol,
              "w": wall clock time of the encoding (epoch seconds; end-to-end lag),
              "g": [{"k": "Trade", "n": 3, "f": ["ts", "ts_recv", "price", "amount"],
                     "o": {"side": ["buy", "sell", "buy"], "trade_id": ["1", "2", "3"]}}, ...],
              "r": [0, 1, 0, ...]}   # group of each event in publication order (several groups)

A float field with a ``None`` in the batch travels in ``"o"`` (JSON) so ``None`` stays ``None``.
``decode`` rebuilds the same frozen events in the same order.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import sys
from array import array
from collections.abc import Sequence
from typing import Any

from cryptomon.events import MARKET_DATA, Event, FeedStatus

VERSION = 1
_LEN = struct.Struct("<I")
_LITTLE = sys.byteorder == "little"


class CodecError(ValueError):
    """A bus message that is not a market-data batch of this version."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Layout:
    cls: type[Event]
    floats: tuple[str, ...]  # declared ``float`` (never None)
    others: tuple[str, ...]  # everything else except exchange/symbol
    tuples: tuple[str, ...]  # tuple fields: JSON lists turned back into tuples


def _layout(cls: type[Event]) -> _Layout:
    floats, others, tuples = [], [], []
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
    return _Layout(cls, tuple(floats), tuple(others), tuple(tuples))


TRANSPORTED: tuple[type[Event], ...] = (*MARKET_DATA, FeedStatus)
"""What a collector forwards: market data and its feeds' status changes (staleness)."""
LAYOUTS: dict[str, _Layout] = {cls.__name__: _layout(cls) for cls in TRANSPORTED}
_BY_CLASS: dict[type[Event], _Layout] = {lay.cls: lay for lay in LAYOUTS.values()}


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
        lay = _BY_CLASS.get(cls)
        if lay is None:
            raise CodecError(f"{cls.__name__} is not market data (expected one of {list(LAYOUTS)})")
        packed, loose, flat = [], {}, []
        for name in lay.floats:
            col = [getattr(ev, name) for ev in evs]
            if None in col:
                loose[name] = col
            else:
                packed.append(name)
                flat.extend(col)
        blobs.append(_pack(flat))  # the group's float columns, one after the other
        for name in lay.others:
            loose[name] = [getattr(ev, name) for ev in evs]
        header_groups.append({"k": cls.__name__, "n": len(evs), "f": packed, "o": loose})
    header: dict[str, Any] = {
        "v": VERSION,
        "c": collector,
        "q": seq,
        "x": exchange,
        "y": symbol,
        "w": sent,
        "g": header_groups,
    }
    if len(groups) > 1:
        header["r"] = order
    head = json.dumps(header, separators=(",", ":")).encode()
    return b"".join([_LEN.pack(len(head)), head, *blobs])


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
        header = json.loads(data[4 : 4 + size])
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
        events = _interleave(per_group, header.get("r"))
        sent = float(header.get("w", 0.0))
        return Batch(header["c"], int(header["q"]), exchange, symbol, events, kinds, sent)
    except CodecError:
        raise
    except (KeyError, TypeError, ValueError, struct.error) as exc:
        raise CodecError(f"not a market-data batch ({exc!r})") from None


def _decode_group(
    group: dict[str, Any], data: bytes, offset: int, exchange: str, symbol: str
) -> tuple[list[Event], int]:
    lay = LAYOUTS.get(group["k"])
    if lay is None:
        raise CodecError(f"unknown event kind {group['k']!r}, expected one of {list(LAYOUTS)}")
    n = int(group["n"])
    columns: dict[str, list[Any]] = {}
    packed = group["f"]
    flat = _unpack(data[offset : offset + 8 * n * len(packed)])
    offset += 8 * n * len(packed)
    for i, name in enumerate(packed):
        columns[name] = flat[i * n : (i + 1) * n]
    for name, col in group["o"].items():
        columns[name] = (
            [tuple(tuple(item) for item in value) for value in col] if name in lay.tuples else col
        )
    names = list(columns)
    cls = lay.cls
    rows = zip(*(columns[name] for name in names), strict=True)
    events = [
        cls(exchange=exchange, symbol=symbol, **dict(zip(names, row, strict=True))) for row in rows
    ]
    return events, offset


def _interleave(groups: list[list[Event]], order: list[int] | None) -> list[Event]:
    if order is None:
        return groups[0] if groups else []
    iters = [iter(group) for group in groups]
    return [next(iters[g]) for g in order]
