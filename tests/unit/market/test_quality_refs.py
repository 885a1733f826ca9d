"""The bad-print guard's references beyond the book: the market's ticker, and the same pair
on other venues (``market_data.bad_print_venue_*``)."""

from __future__ import annotations

import math

import pytest

from cryptomon.config import MarketDataConfig
from cryptomon.market.inputs import MarketInputs
from cryptomon.market.peers import VenueBoard, comparison_key
from cryptomon.market.quality import QualityGuard
from cryptomon.market.registry import InstrumentRegistry

SYM = "BTC-USDT"
T0 = 1000.0


def fresh(name: str = "a", board: VenueBoard | None = None) -> QualityGuard:
    guard = QualityGuard(name, config=MarketDataConfig(), board=board)
    guard.on_connected(T0)
    return guard


def warm(guard: QualityGuard, symbol: str = SYM, price: float = 100.0, t: float = T0) -> float:
    """Ten ordinary prints one second apart, no book: returns the time of the last."""
    for i in range(10):
        assert guard.trade(symbol, price, t + i, t + i, f"{guard.exchange}{symbol}{i}") == "ok"
    return t + 9


# ---------------------------------------------------------------------- the ticker


def test_a_first_print_is_judged_against_a_fresh_ticker() -> None:
    """A market followed by ticker only: its first print x10 away from the ticker's bid/ask
    is quarantined (before: it passed unjudged), a print inside them passes; both counted."""
    guard = fresh()
    guard.ticker(SYM, 100.0, 100.1, T0 + 1.0)
    assert guard.trade(SYM, 1000.5, T0 + 1.2, T0 + 1.2, "x10") == "bad_print"
    assert guard.trade(SYM, 100.05, T0 + 1.3, T0 + 1.3, "ok") == "ok"
    stats = guard.stats()
    assert (stats["ticker_judged"], stats["ticker_refuted"], stats["unjudged"]) == (2, 1, 0)


def test_a_ticker_with_only_a_last_price_is_a_reference_and_an_empty_one_is_not() -> None:
    """Venues whose ticker has no bid/ask (0 or NaN) but a last price: the last price is the
    reference; a ticker with neither is ignored (the print passes unjudged)."""
    guard = fresh()
    guard.ticker(SYM, math.nan, math.nan, T0 + 1.0, last=100.0)
    assert guard.trade(SYM, 1000.0, T0 + 1.1, T0 + 1.1, "x10") == "bad_print"
    other = fresh()
    other.ticker(SYM, 0.0, 0.0, T0 + 1.0)
    assert other.trade(SYM, 1000.0, T0 + 1.1, T0 + 1.1, "x10") == "ok"
    assert other.unjudged == 1


def test_a_stale_ticker_is_no_reference() -> None:
    """A ticker older than bad_print_mid_follow_s judges nothing (the book's freshness rule)."""
    guard = fresh()
    guard.ticker(SYM, 100.0, 100.1, T0 + 1.0)
    assert guard.trade(SYM, 1000.0, T0 + 2.5, T0 + 2.5, "x10") == "ok"
    assert guard.unjudged == 1


def test_a_fresh_book_comes_before_the_ticker() -> None:
    """A fresh book and a fresh ticker that disagree: the book judges."""
    guard = fresh()
    guard.book(SYM, 1000.0, 1000.5, T0 + 1.0)
    guard.ticker(SYM, 100.0, 100.1, T0 + 1.0)
    assert guard.trade(SYM, 1000.2, T0 + 1.1, T0 + 1.1, "t") == "ok"
    assert guard.ticker_judged == 0


def test_a_ticker_following_a_genuine_move_backs_it() -> None:
    """A warm market at 100, no book: its ticker at 115 backs a print at 115 (a move,
    accepted at once); the next prints there are ordinary."""
    guard = fresh()
    t = warm(guard)
    guard.ticker(SYM, 114.9, 115.1, t + 0.5)
    assert guard.trade(SYM, 115.0, t + 0.6, t + 0.6, "m") == "ok"
    assert guard.moves_accepted == 1
    assert guard.trade(SYM, 115.1, t + 0.7, t + 0.7, "n") == "ok"


def held_burst(guard: QualityGuard, price: float, t: float, *, ticker: float | None = None) -> list:
    """Three prints at ``price`` 0.55 s apart (held 1.1 s > bad_print_confirm_hold_s),
    with the market's ticker at ``ticker`` refreshed every 0.5 s if given."""
    verdicts = []
    for k in range(3):
        at = t + 0.55 * k
        if ticker is not None:
            guard.ticker(SYM, ticker, ticker * 1.001, at - 0.05)
        verdicts.append(guard.trade(SYM, price, at, at, f"b{k}"))
    return verdicts


def test_a_held_bookless_burst_is_kept_quarantined_by_a_fresh_ticker_at_the_old_level() -> None:
    """Three x10 prints held 1.1 s, no book: without a ticker the third confirms a move (the
    documented prints-alone rule); with the market's ticker fresh at the old level all three
    stay quarantined and the reference stays."""
    alone = fresh()
    assert held_burst(alone, 1000.0, warm(alone) + 1.0) == ["bad_print", "bad_print", "ok"]
    guard = fresh()
    verdicts = held_burst(guard, 1000.0, warm(guard) + 1.0, ticker=100.0)
    assert verdicts == ["bad_print"] * 3
    assert guard.moves_accepted == 0
    assert guard.symbols[SYM].median == 100.0
    assert guard.ticker_refuted == 3


def test_a_ticker_at_the_old_level_takes_the_votes_back() -> None:
    """Two x10 prints with no reference vote for a move; a ticker at the old level arrives:
    their votes are gone, so the prints after it (the ticker stale again) start over."""
    guard = fresh()
    t = warm(guard) + 1.0
    assert guard.trade(SYM, 1000.0, t, t, "p0") == "bad_print"
    assert guard.trade(SYM, 1000.0, t + 0.5, t + 0.5, "p1") == "bad_print"
    guard.ticker(SYM, 100.0, 100.1, t + 0.6)
    assert guard.trade(SYM, 1000.0, t + 1.7, t + 1.7, "p2") == "bad_print"  # 1 vote, not 3
    assert guard.moves_accepted == 0


# ---------------------------------------------------------------------- other venues


def test_comparable_markets_share_base_and_quote_spot_or_perpetual() -> None:
    assert comparison_key("BTC-USDT") == comparison_key("BTC-USDT-PERP") == ("BTC", "USDT")
    assert comparison_key("BTC-USD-PERP") == ("BTC", "USD")  # inverse: USD per BTC as spot
    assert comparison_key("BTC-USD-22K27") is None  # a dated future's basis
    assert comparison_key("BTC-USD-30000-22K27-C") is None
    assert comparison_key("BTC") is None
    assert comparison_key("BTC-USDT") != comparison_key("BTC-USD")
    assert comparison_key("1000SHIB-USDT-PERP") != comparison_key("SHIB-USDT")


def venues() -> tuple[QualityGuard, QualityGuard, QualityGuard]:
    """Venue a (spot, judged), b (perpetual) and c (spot) on one board; b and c at 100."""
    board = VenueBoard()
    a, b, c = fresh("a", board), fresh("b", board), fresh("c", board)
    b.book("BTC-USDT-PERP", 100.0, 100.1, T0 + 1.0)
    c.trade(SYM, 100.2, T0 + 1.0, T0 + 1.0, "c1")
    return a, b, c


def test_a_first_print_is_judged_against_other_venues_when_it_has_no_fresh_top() -> None:
    """No book or ticker of its own: venue a's first print x10 away from venues b and c is
    quarantined (before: unjudged); 15 % away (a fast move a leads) passes."""
    a, _, _ = venues()
    assert a.trade(SYM, 1000.0, T0 + 1.5, T0 + 1.5, "x10") == "bad_print"
    assert a.trade(SYM, 10.0, T0 + 1.6, T0 + 1.6, "x0.1") == "bad_print"
    assert a.trade(SYM, 115.0, T0 + 1.7, T0 + 1.7, "up15") == "ok"
    stats = a.stats()
    assert (stats["venue_judged"], stats["venue_refuted"], stats["unjudged"]) == (3, 2, 0)


def test_other_venues_older_than_their_max_age_are_no_reference() -> None:
    a, _, _ = venues()
    late = T0 + 1.0 + MarketDataConfig().bad_print_venue_max_age_s + 0.1
    assert a.trade(SYM, 1000.0, late, late, "x10") == "ok"
    assert a.unjudged == 1


def test_a_held_bookless_burst_is_kept_quarantined_by_other_venues_at_the_old_level() -> None:
    """Venue a, warm at 100 with no book or ticker, prints x10 held 1.1 s while b and c trade
    on at 100: every print quarantined, the votes taken back at each."""
    a, b, _ = venues()
    t = warm(a, t=T0 + 2.0) + 1.0
    for k in range(4):
        b.book("BTC-USDT-PERP", 100.0, 100.1, t + 0.5 * k)
    assert held_burst(a, 1000.0, t) == ["bad_print"] * 3
    assert a.moves_accepted == 0
    assert a.venue_refuted == 3


def test_a_genuine_15pct_move_on_the_leading_venue_is_not_held_back_by_lagging_venues() -> None:
    """Venue a moves 15 % first; b and c still at the old level: within the venues' band,
    so the prints vote and the move is accepted as with no other venue."""
    a, b, _ = venues()
    t = warm(a, t=T0 + 2.0) + 1.0
    b.book("BTC-USDT-PERP", 100.0, 100.1, t)
    assert held_burst(a, 115.0, t) == ["bad_print", "bad_print", "ok"]
    assert a.moves_accepted == 1
    assert a.venue_refuted == 0


def test_a_rebuilt_guard_replaces_its_markets_on_the_board() -> None:
    """A config reload builds a new guard for the exchange: its market replaces the old one's
    (no reference from the dead guard, no growth per reload)."""
    board = VenueBoard()
    old, new = fresh("a", board), fresh("a", board)
    old.trade(SYM, 100.0, T0, T0, "o")
    new.trade(SYM, 100.0, T0, T0, "n")
    assert list(board.group(SYM).values()) == [new.symbols[SYM]]


def test_every_feed_guard_of_the_process_shares_one_board() -> None:
    inputs = MarketInputs(registry=InstrumentRegistry())
    a, b = inputs.guard("a"), inputs.guard("b")
    assert a.board is b.board is inputs.board
    b.trade(SYM, 100.0, T0, T0, "b")
    a.on_connected(T0)
    assert a.trade(SYM, 1000.0, T0 + 1, T0 + 1, "x10") == "bad_print"


@pytest.mark.parametrize(
    ("field", "value"), [("bad_print_venue_band_pct", 0), ("bad_print_venue_max_age_s", 0)]
)
def test_the_venue_settings_must_be_positive(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        MarketDataConfig(**{field: value})
