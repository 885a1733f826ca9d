"""Which venue orders are the venue's own closes (Binance's documented client ids), and the
id the engine journals them by."""

from __future__ import annotations

import pytest

from cryptomon.trading.brokers.ccxt_forced import forced_mark, journal_id


@pytest.mark.parametrize(
    ("cid", "mark"),
    [
        ("autoclose-1596107620040000020", ("liquidation", "liquidation")),
        ("adl_autoclose", ("liquidation", "auto-deleveraging")),
        ("settlement_autoclose-1700000000000000001", ("settlement", "settlement")),
        ("cmm101a7193e9682656cd5b6b56d3823", None),  # ours
        ("web_by_hand_1", None),  # someone's manual order
        ("x-autoclose-1", None),
        ("", None),
    ],
)
def test_forced_marks(cid: str, mark: tuple[str, str] | None) -> None:
    assert forced_mark(cid) == mark


def test_a_shared_client_id_gets_the_order_id() -> None:
    assert journal_id("adl_autoclose", "42") == "adl_autoclose-42"
    assert journal_id("autoclose-1596107620040000020", "42") == "autoclose-1596107620040000020"
