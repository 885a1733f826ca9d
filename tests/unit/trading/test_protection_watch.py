"""Which side of a protection the book watches, by where its legs are."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cryptomon.trading.protection import Protection


def _prot(**kw: object) -> Protection:
    return Protection(
        exchange="binance",
        symbol="BTC-USDT-PERP",
        long=True,
        stop=Decimal(97),
        take=Decimal(106),
        entry_id="cms1",
        trail_pct=Decimal(1),
        best=Decimal(100),
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("native", "missing", "on_book"),
    [
        (False, None, True),  # emulated: the book watches both sides
        (True, None, False),  # both legs rest at the venue
        (True, "stop_loss", True),
        (True, "take_profit", False),
        (True, "both", True),  # both legs unknown: both sides watched, the stop too
    ],
)
def test_the_stop_is_on_the_book_when_its_side_is_watched(
    native: bool, missing: str | None, on_book: bool
) -> None:
    prot = _prot(native=native, missing=missing)
    assert prot.stop_on_book is on_book
    # and a stop on the book trails (it is persisted and restored as such)
    prot.trigger(Decimal(110), Decimal("110.1"))
    assert (prot.stop > Decimal(97)) is on_book
