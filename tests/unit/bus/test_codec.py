"""The columnar market-data batch codec, the deterministic ids and the bus config section."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import replace
from decimal import Decimal

import pytest

from cryptomon.bus.codec import CodecError, decode, encode
from cryptomon.bus.outbound import to_message
from cryptomon.commands.run import with_role
from cryptomon.config import Settings
from cryptomon.errors import ConfigError
from cryptomon.events import (
    Anomaly,
    BookSnapshot,
    Event,
    FlaggedTrade,
    Funding,
    OpenInterest,
    Severity,
    Ticker,
    Trade,
)
from cryptomon.ids import anomaly_id, signal_id, stable_id

EX, SYM = "binance", "BTC-USDT"


def events() -> list:
    return [
        Trade(exchange=EX, symbol=SYM, ts=1.5, ts_recv=2.0, price=3.0, amount=0.1, side="buy"),
        BookSnapshot(
            exchange=EX, symbol=SYM, ts=1.0, ts_recv=2.0, bids=((1.0, 2.0),), asks=((3.0, 4.0),)
        ),
        Ticker(exchange=EX, symbol=SYM, ts=1.0, ts_recv=2.0, bid=1.0, ask=2.0),
        Funding(exchange=EX, symbol=SYM, ts=1.0, ts_recv=2.0, rate=1e-4, mark_price=None),
        Trade(
            exchange=EX,
            symbol=SYM,
            ts=1.6,
            ts_recv=2.1,
            price=3.1,
            amount=0.2,
            side="sell",
            trade_id="9",
        ),
    ]


def test_batch_round_trip_keeps_every_event_and_their_order() -> None:
    """A batch decodes to equal events in publication order, with its collector and sequence."""
    evs = events()
    batch = decode(encode(evs, collector="c1", seq=42, exchange=EX, symbol=SYM))
    assert batch.events == evs
    assert (batch.collector, batch.seq, batch.exchange, batch.symbol) == ("c1", 42, EX, SYM)
    assert batch.kinds == {"Trade": 2, "BookSnapshot": 1, "Ticker": 1, "Funding": 1}


def test_floats_travel_exactly() -> None:
    """Float columns are binary float64: values come back bit for bit."""
    price = 0.1 + 0.2
    ev = Trade(
        exchange=EX,
        symbol=SYM,
        ts=1e9 + 0.123456789,
        ts_recv=1.0,
        price=price,
        amount=1.0,
        side="buy",
    )
    (back,) = decode(encode([ev], collector="c", seq=1, exchange=EX, symbol=SYM)).events
    assert back.price == price
    assert back.ts == ev.ts


def test_a_bad_message_is_a_clear_codec_error() -> None:
    """Garbage and other versions raise CodecError naming what was expected."""
    with pytest.raises(CodecError, match="not a market-data batch"):
        decode(b"\x05\x00\x00\x00hello")
    with pytest.raises(CodecError, match="not market data"):
        encode(
            [
                Anomaly(
                    exchange=EX,
                    symbol=SYM,
                    ts=1,
                    ts_recv=1,
                    kind="x",
                    severity=Severity.LOW,
                    value=1,
                    threshold=1,
                    confidence=1,
                )
            ],
            collector="c",
            seq=1,
            exchange=EX,
            symbol=SYM,
        )


def test_ids_are_deterministic_from_their_inputs() -> None:
    """The same inputs give the same anomaly/signal id; another input another id."""
    one = anomaly_id(EX, SYM, kind="volume_spike", ts=1.0, ts_recv=2.0, value=3.0)
    assert one == anomaly_id(EX, SYM, kind="volume_spike", ts=1.0, ts_recv=2.0, value=3.0)
    assert one != anomaly_id(EX, SYM, kind="volume_spike", ts=1.0, ts_recv=2.0, value=3.5)
    assert len(one) == 32
    assert int(one, 16) >= 0
    sig = signal_id(EX, SYM, source="rule", side="buy", ts=1.0, anomaly=one)
    assert sig == signal_id(EX, SYM, source="rule", side="buy", ts=1.0, anomaly=one)
    assert sig != signal_id(EX, SYM, source="rule", side="sell", ts=1.0, anomaly=one)


def test_signal_ids_keep_their_digest() -> None:
    """A signal id digests its parts as before (stored and published ids stay comparable
    across versions): the values of ``stable_id("signal", ...)``, pinned."""
    one = signal_id(
        "binance", "BTC-USDT", source="indicators", side="buy", ts=1704067260.0, anomaly=None
    )
    assert one == "56bcb883213a6d3274fc0045a3bd58b5"
    two = signal_id("binance", "BTC-USDT", source="rule", side="sell", ts=0.1, anomaly="ab")
    assert two == "00f5f6fbee8718aa8153b80e3335c5e1"
    assert two == stable_id("signal", "binance", "BTC-USDT", "rule", "sell", 0.1, "ab")


def test_outbound_message_is_json_with_decimals_as_strings() -> None:
    """An anomaly goes out as schema-1 JSON with a Nats-Msg-Id from its id."""
    anomaly = Anomaly(
        exchange=EX,
        symbol=SYM,
        ts=1,
        ts_recv=1,
        kind="x",
        severity=Severity.HIGH,
        value=1,
        threshold=1,
        confidence=1,
        reasons=("a",),
        id="abc",
    )
    kind, msg_id, payload = to_message(anomaly)
    assert (kind, msg_id) == ("anomaly", "anomaly:abc")
    assert b'"schema":1' in payload
    assert b'"severity":"high"' in payload


def test_bus_config_rejects_bad_values_with_clear_messages() -> None:
    """A wrong role or subject prefix is a ConfigError naming the key and what is expected."""
    from cryptomon.config import load_settings

    with pytest.raises(ConfigError) as info:
        load_settings(None, environ={"CRYPTOMON_BUS__ROLE": "worker"})
    assert "bus.role" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_settings(None, environ={"CRYPTOMON_BUS__SUBJECT_PREFIX": "a b"})
    assert "bus.subject_prefix" in str(info.value)


def test_run_role_overrides_the_config() -> None:
    """``run --role brain`` replaces bus.role; no role keeps the config's."""
    settings = Settings()
    assert with_role(settings, "brain").bus.role == "brain"
    assert with_role(settings, None).bus.role == "all"


def test_flagged_trades_travel_with_their_trade_and_flag() -> None:
    """A trade the quality layer flagged (history, bad print) decodes to an equal FlaggedTrade
    wrapping an equal Trade, in order with the other kinds."""
    trade = Trade(
        exchange=EX,
        symbol=SYM,
        ts=1.0,
        ts_recv=2.0,
        price=3.0,
        amount=0.5,
        side="sell",
        trade_id="7",
        notional=1.5,
    )
    flagged = FlaggedTrade(
        exchange=EX, symbol=SYM, ts=1.0, ts_recv=2.0, trade=trade, flag="historical"
    )
    evs = [flagged, *events(), flagged]
    batch = decode(encode(evs, collector="c", seq=3, exchange=EX, symbol=SYM))
    assert batch.events == evs
    assert batch.kinds["FlaggedTrade"] == 2


def test_a_truncated_or_inconsistent_batch_is_a_codec_error() -> None:
    """A message cut short, with bytes left over, or with a column of the wrong length is a
    CodecError, never an exception from inside the decoder."""
    good = encode(events(), collector="c", seq=1, exchange=EX, symbol=SYM)
    with pytest.raises(CodecError, match="do not fit"):
        decode(good[:-8])
    with pytest.raises(CodecError, match="after the last column"):
        decode(good + b"\x00" * 8)
    one = encode(events()[:1], collector="c", seq=1, exchange=EX, symbol=SYM)
    bad = one.replace(b'"side":["buy"]', b'"side":["buy","sell"]')
    size = len(bad) - (len(one) - int.from_bytes(one[:4], "little"))
    with pytest.raises(CodecError, match="'side' has 2 values"):
        decode(size.to_bytes(4, "little") + bad[4:])


def test_delivery_count_is_read_from_both_ack_subject_forms() -> None:
    """The brain's cheap delivery count agrees with nats-py's metadata on the 9-token and the
    12-token (domain, account hash) JetStream ack subjects."""
    from nats.aio.msg import Msg

    from cryptomon.bus.source import delivered

    for reply in (
        "$JS.ACK.STREAM.consumer.3.120.110.1733380000000000000.42",
        "$JS.ACK.hub.ACCHASH.STREAM.consumer.2.120.110.1733380000000000000.42.rand",
    ):
        msg = Msg(_client=None, subject="x", reply=reply)  # type: ignore[arg-type]
        assert delivered(msg) == msg.metadata.num_delivered
        assert delivered(msg) > 1


def test_unknown_kinds_and_columns_are_codec_errors_naming_them() -> None:
    """A group of an unknown kind, or with a column the kind does not have, is a CodecError
    that names the kind or the column."""
    one = encode(events()[:1], collector="c", seq=1, exchange=EX, symbol=SYM)

    def with_header(old: bytes, new: bytes) -> bytes:
        size = int.from_bytes(one[:4], "little")
        head = one[4 : 4 + size].replace(old, new)
        return len(head).to_bytes(4, "little") + head + one[4 + size :]

    with pytest.raises(CodecError, match="unknown event kind 'Gossip'"):
        decode(with_header(b'"k":"Trade"', b'"k":"Gossip"'))
    with pytest.raises(CodecError, match="mood"):
        decode(with_header(b'"side":["buy"]', b'"side":["buy"],"mood":["calm"]'))
    with pytest.raises(CodecError, match=r"\|"):
        decode(with_header(b'"f":["ts",', b'"f":["|","ts",'))


def test_nan_and_infinities_in_optional_floats_and_book_levels_travel_exactly() -> None:
    """A NaN or infinity in a ``float | None`` field or a book level comes back as itself (JSON
    has neither: they came back None, so the brain saw other events than the single process),
    beside None, -0.0 and the extremes; a packed float column keeps them too."""
    nan, inf = float("nan"), float("inf")
    sym = "ÄB.C*> x"
    events: list[Event] = [
        Trade(
            exchange=EX,
            symbol=sym,
            ts=1.0,
            ts_recv=-0.0,
            price=inf,
            amount=nan,
            side="buy",
            contracts=nan,
            notional=-inf,
            notional_usd=-0.0,
        ),
        Trade(
            exchange=EX,
            symbol=sym,
            ts=1.0,
            ts_recv=2.0,
            price=1.0,
            amount=1.0,
            side="sell",
            trade_id="nan",
            notional=1e308,
            notional_usd=5e-324,
        ),
        BookSnapshot(
            exchange=EX, symbol=sym, ts=1.0, ts_recv=1.0, bids=((nan, -0.0), (inf, 1.0)), asks=()
        ),
        Ticker(exchange=EX, symbol=sym, ts=1.0, ts_recv=1.0, bid=1.0, ask=2.0, last=nan),
        Funding(exchange=EX, symbol=sym, ts=1.0, ts_recv=1.0, rate=-0.0, predicted_rate=-inf),
    ]
    back = decode(encode(events, collector="c", seq=1, exchange=EX, symbol=sym)).events

    def same(a: object, b: object) -> bool:
        if isinstance(a, float) and isinstance(b, float):
            return repr(a) == repr(b)  # NaN equal to NaN, -0.0 not equal to 0.0
        if isinstance(a, tuple) and isinstance(b, tuple):
            return len(a) == len(b) and all(map(same, a, b))
        return type(a) is type(b) and a == b

    for sent, got in zip(events, back, strict=True):
        assert type(got) is type(sent)
        for fld in dataclasses.fields(sent):
            assert same(getattr(sent, fld.name), getattr(got, fld.name)), fld.name
    assert back[1].trade_id == "nan"  # a string stays a string


def test_contract_levels_and_open_interest_units_travel() -> None:
    """A derivative's snapshot (base-unit levels with the venue's contract levels beside them)
    and an open interest with its contracts, notional and a NaN base amount (an inverse
    market before its first book) come back as sent: the brain's paper broker walks the same
    contracts as a single process."""
    snap = BookSnapshot(
        exchange=EX,
        symbol="ATOM-USD-PERP",
        ts=1.0,
        ts_recv=2.0,
        bids=((10.0, 1.0), (9.99, 2.002002002002002)),
        asks=((10.01, 0.999000999000999),),
        contract_bids=((10.0, 1.0), (9.99, 2.0)),
        contract_asks=((10.01, 1.0),),
    )
    spot = BookSnapshot(
        exchange=EX, symbol="ATOM-USD-PERP", ts=3.0, ts_recv=3.0, bids=((1.0, 2.0),), asks=()
    )
    oi = OpenInterest(
        exchange=EX,
        symbol="ATOM-USD-PERP",
        ts=1.0,
        ts_recv=2.0,
        open_interest=float("nan"),
        contracts=50.0,
        notional=500.0,
    )
    sent = [snap, spot, oi]
    back = decode(encode(sent, collector="c", seq=1, exchange=EX, symbol="ATOM-USD-PERP")).events
    assert back[:2] == sent[:2]
    assert back[0].venue_asks == ((10.01, 1.0),)
    assert back[1].venue_bids == ((1.0, 2.0),)
    assert math.isnan(back[2].open_interest)
    assert (back[2].contracts, back[2].notional) == (50.0, 500.0)


def test_outbound_order_message_id_has_one_spelling_of_the_filled_amount() -> None:
    """Equal amounts give one Nats-Msg-Id whatever their spelling (trailing zeros, exponent,
    negative zero); amounts that differ in their 30th digit stay apart (no rounding)."""
    from cryptomon.bus.outbound import amount_key
    from cryptomon.events import OrderState, OrderUpdate

    def msg_id(filled: str) -> str:
        update = OrderUpdate(
            exchange=EX,
            symbol=SYM,
            ts=1,
            ts_recv=1,
            client_order_id="c1",
            state=OrderState.PARTIALLY_FILLED,
            side="buy",
            type="limit",
            amount=Decimal(2),
            filled=Decimal(filled),
        )
        return to_message(update)[1]

    assert {msg_id(f) for f in ("1.0", "1.00", "1E+0", "1", "0.1E1")} == {
        "order:c1:partially_filled:1"
    }
    assert {msg_id(f) for f in ("0", "-0", "0E-8", "-0.000", "0E+3")} == {
        "order:c1:partially_filled:0"
    }
    assert msg_id("1E+2") == msg_id("100.000") == "order:c1:partially_filled:100"
    assert msg_id("1.5E-7") == "order:c1:partially_filled:0.00000015"
    long = "1.00000000000000000000000000001"  # 30 digits: beyond the default precision
    assert amount_key(Decimal(long)) == long
    assert amount_key(Decimal(long + "000")) == long
    assert amount_key(Decimal("-2.50")) == "-2.5"


def test_outbound_message_spells_non_finite_detector_numbers_as_valid_json() -> None:
    """NaN and infinities are standard JSON strings named in ``nf``; finite fields stay
    numbers and a message without them has no ``nf``."""
    import json

    def refuse(name: str) -> object:
        raise ValueError(f"not JSON: {name}")

    anomaly = Anomaly(
        exchange=EX,
        symbol=SYM,
        ts=1,
        ts_recv=1,
        kind="x",
        severity=Severity.HIGH,
        value=float("inf"),
        threshold=1.5,
        confidence=1,
        z_score=float("nan"),
        id="abc",
    )
    body = json.loads(to_message(anomaly)[2], parse_constant=refuse)
    assert (body["value"], body["z_score"], body["threshold"]) == ("inf", "nan", 1.5)
    assert body["nf"] == ["value", "z_score"]
    plain = json.loads(to_message(replace(anomaly, value=2.0, z_score=None))[2])
    assert "nf" not in plain
