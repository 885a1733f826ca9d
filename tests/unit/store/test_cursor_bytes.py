"""A page cursor's bytes do not depend on which JSON library made them: ``encode_cursor``
gives the base64 of ``json.dumps([micros, key])`` (compact) for every key, and the page
statement's driver parameters are those SQLAlchemy's ``construct_params`` gives."""

from __future__ import annotations

import base64
import itertools
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from cryptomon.store.anomaly_json import driver_statement
from cryptomon.store.pages import decode_cursor, encode_cursor

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _reference(ts: datetime, key: str) -> str:
    micros = (ts - _EPOCH) // timedelta(microseconds=1)
    raw = json.dumps([micros, key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_cursor_bytes_are_jsons_for_every_kind_of_key() -> None:
    rnd = random.Random(16)
    keys = [
        f"{7:032x}",
        "",
        'quote " and back\\slash',
        "tab\tnew\nline\x00\x1f",
        "del\x7f",
        "é ünïcode ✓ 𝄞",
        "\ud800 lone surrogate",
        "<script>&'",
    ]
    keys += ["".join(chr(rnd.randrange(0, 0x250)) for _ in range(12)) for _ in range(2_000)]
    for key in keys:
        ts = _EPOCH + timedelta(microseconds=rnd.randrange(-(10**15), 10**17))
        cursor = encode_cursor(ts, key)
        assert cursor == _reference(ts, key), key
        if "\x00" in key:  # no row id holds NUL (PostgreSQL text cannot): a forged cursor
            with pytest.raises(ValueError, match="invalid cursor"):
                decode_cursor(cursor)
        elif "\ud800" not in key:
            assert decode_cursor(cursor) == (ts, key)


def test_page_parameters_are_construct_params() -> None:
    """Every filter shape on both dialects: the driver parameters of a request equal the
    compiled statement's ``construct_params`` with the bind processors applied."""
    names = ["exchange", "symbol", "kind", "rank", "since", "until", "cursor"]
    values = {
        "exchange": "BINANCE",
        "symbol": "BTC-USDT",
        "kind": "price_spike",
        "rank": 2,
        "since": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        "until": datetime(2026, 2, 2, 3, 4, 5, 6, tzinfo=UTC),
        "c_ts": datetime(2026, 1, 9, 3, 4, 5, 7, tzinfo=UTC),
        "c_id": "a" * 32,
        "limit": 51,
        "shown": 50,
    }
    for dialect in (postgresql.psycopg.dialect(), sqlite.pysqlite.dialect()):
        for r in range(len(names) + 1):
            for combo in itertools.combinations(names, r):
                shown = set(combo) - {"cursor"} | {"limit", "shown"}
                if "cursor" in combo:
                    shown |= {"c_ts", "c_id"}
                params = {k: values[k] for k in shown}
                stmt = driver_statement(dialect, frozenset(params))
                expected = stmt.compiled.construct_params(params)
                for name, value in list(expected.items()):
                    process = stmt.compiled.binds[name].type.bind_processor(dialect)
                    if process is not None and value is not None:
                        expected[name] = process(value)
                if stmt.positions is not None:
                    assert stmt.parameters(params) == tuple(expected[n] for n in stmt.positions)
                else:
                    assert stmt.parameters(params) == expected
