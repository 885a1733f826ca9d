"""The quality guard: duplicates, history, bad prints, confirmed moves, per-symbol staleness."""

from __future__ import annotations

import pytest

from cryptomon.config import MarketDataConfig
from cryptomon.market.quality import QualityGuard

SYM = "BTC-USDT"


def warmed(config: MarketDataConfig | None = None, price: float = 100.0) -> QualityGuard:
    """A guard subscribed at t=1000 that has seen ten normal prints around ``price``."""
    guard = QualityGuard("x", config=config)
    guard.on_connected(1000.0)
    for i in range(10):
        assert guard.trade(SYM, price + (i % 3) * 0.01, 1000.0 + i, 1000.0 + i, f"w{i}") == "ok"
    return guard


def test_a_repeated_trade_id_is_a_duplicate_and_counted() -> None:
    """The same id twice for a market: the second is dropped as a duplicate and counted."""
    guard = warmed()
    assert guard.trade(SYM, 100.0, 1011.0, 1011.0, "a") == "ok"
    assert guard.trade(SYM, 100.0, 1011.0, 1011.5, "a") == "duplicate"
    assert guard.trade("ETH-USDT", 100.0, 1011.0, 1011.5, "a") == "ok"  # per market
    assert guard.duplicates == 1


def test_a_trade_without_id_sent_again_is_a_duplicate() -> None:
    """A venue without trade ids (Kraken): a message of trades received again (same time,
    price, amount and side of each, in the same order) is dropped; two identical fills within
    one message (one receipt) are both kept, and so is the same fill at another time."""
    guard = warmed()
    first = [(100.0, 0.5, "buy"), (100.0, 0.5, "buy"), (100.1, 0.2, "sell")]
    for price, amount, side in first:
        got = guard.trade(SYM, price, 1011.25, 1011.3, None, amount=amount, side=side)
        assert got == "ok"
    for price, amount, side in first:  # the same message again, 2 s later
        got = guard.trade(SYM, price, 1011.25, 1013.3, None, amount=amount, side=side)
        assert got == "duplicate"
    assert guard.duplicates == 3
    assert guard.trade(SYM, 100.0, 1011.26, 1013.4, None, amount=0.5, side="buy") == "ok"
    assert guard.trade(SYM, 100.0, 1011.26, 1013.5, None, amount=0.6, side="buy") == "ok"
    assert guard.trade(SYM, 100.0, 1011.26, 1013.6, None) == "ok"  # nothing to tell it by
    assert guard.trade(SYM, 100.0, 1011.26, 1013.7, None) == "ok"


def test_trade_id_memory_is_bounded_per_market() -> None:
    """Only the last ``duplicate_memory`` ids are remembered: an id older than that passes."""
    guard = warmed(MarketDataConfig(duplicate_memory=16))
    for i in range(40):
        guard.trade(SYM, 100.0, 1020.0 + i, 1020.0 + i, f"id{i}")
    state = guard.symbols[SYM]
    assert len(state.ids) == 16
    assert len(state.id_order) == 16
    assert guard.trade(SYM, 100.0, 1070.0, 1070.0, "id0") == "ok"
    assert guard.trade(SYM, 100.0, 1070.0, 1070.0, "id39") == "duplicate"


def test_trades_before_the_subscription_are_historical() -> None:
    """A trade older than the subscribe time minus the tolerance is history; within it, live."""
    guard = QualityGuard("x", config=MarketDataConfig(history_tolerance_s=5))
    guard.on_connected(1000.0)
    assert guard.trade(SYM, 100.0, 990.0, 1000.1, "h1") == "historical"
    assert guard.trade(SYM, 100.0, 996.0, 1000.1, "h2") == "ok"
    assert guard.historical == 1


def test_a_ten_times_print_and_absurd_prices_are_quarantined() -> None:
    """10x the price, a collapse to 5.67%, 1e308, zero and NaN are bad prints."""
    guard = warmed()
    for n, price in enumerate((1000.0, 5.67, 1e308, 0.0, float("nan"), float("inf"))):
        assert guard.trade(SYM, price, 1011.0 + n * 3, 1011.0 + n * 3, f"b{n}") == "bad_print"
    assert guard.bad_prints == 6
    assert guard.trade(SYM, 100.02, 1030.0, 1030.0, "ok") == "ok"


def test_three_consistent_prints_within_two_seconds_are_a_real_move() -> None:
    """A crash to 90 confirmed by three prints within 2 s is accepted from the third print."""
    guard = warmed()
    verdicts = [
        guard.trade(SYM, 89.0 + i * 0.1, 1011.0 + i * 0.5, 1011.0 + i * 0.5, f"c{i}")
        for i in range(4)
    ]
    assert verdicts == ["bad_print", "bad_print", "ok", "ok"]
    assert guard.moves_accepted == 1


def test_prints_spread_over_more_than_the_window_do_not_confirm() -> None:
    """Suspect prints 3 s apart never make a move (each restarts the window)."""
    guard = warmed()
    verdicts = [guard.trade(SYM, 50.0, 1011.0 + i * 3, 1011.0 + i * 3, f"s{i}") for i in range(4)]
    assert verdicts == ["bad_print"] * 4


def test_the_book_following_a_print_within_a_second_confirms_it() -> None:
    """A print at 90 then a book whose mid is 90 within 1 s: the move is real, the book too."""
    guard = warmed()
    assert guard.trade(SYM, 90.0, 1011.0, 1011.0, "p") == "bad_print"
    assert guard.book(SYM, 89.9, 90.1, 1011.4) is True
    assert guard.trade(SYM, 90.05, 1011.5, 1011.5, "q") == "ok"


def test_a_print_inside_a_fresh_book_is_accepted() -> None:
    """When the book already moved (fresh, enclosing the print), the print is not suspect."""
    guard = warmed()
    for i in range(8):  # the book drops first: held for the follow time, it moves the reference
        guard.book(SYM, 89.9, 90.1, 1011.0 + i * 0.2)
    assert guard.trade(SYM, 90.0, 1012.7, 1012.7, "after") == "ok"


def test_a_lone_bad_book_top_is_quarantined() -> None:
    """One book top whose mid is 10x the recent prints is kept away (counted)."""
    guard = warmed()
    assert guard.book(SYM, 999.0, 1001.0, 1011.0) is False
    assert guard.bad_books == 1
    assert guard.book(SYM, 99.9, 100.1, 1011.1) is True


def test_a_symbol_silent_beyond_its_learned_bound_is_stale_and_recovers_on_data() -> None:
    """A symbol seen every 0.5 s is stale after max(10 x 0.5, stale_min_s) of silence, while
    a busy neighbour stays live; one message makes it live again."""
    guard = QualityGuard("x", config=MarketDataConfig(stale_min_s=2.0, stale_factor=10))
    guard.on_connected(0.0)
    for i in range(20):
        guard.trade("A-USDT", 10.0, i * 0.5, i * 0.5, f"a{i}")
        guard.trade("B-USDT", 10.0, i * 0.5, i * 0.5, f"b{i}")
    assert guard.check_stale(12.0) == ([], [])
    guard.trade("B-USDT", 10.0, 14.0, 14.0, "b-late")
    assert guard.check_stale(15.1) == (["A-USDT"], [])
    assert guard.stats()["stale_symbols"] == 1
    guard.trade("A-USDT", 10.0, 15.2, 15.2, "a-back")
    assert guard.check_stale(15.3) == ([], ["A-USDT"])


def stale_a(guard: QualityGuard) -> None:
    """A-USDT seen every 0.5 s up to 9.5 s, then silent: stale at 15.1 (B-USDT busy)."""
    guard.on_connected(0.0)
    for i in range(20):
        guard.trade("A-USDT", 10.0, i * 0.5, i * 0.5, f"a{i}")
        guard.trade("B-USDT", 10.0, i * 0.5, i * 0.5, f"b{i}")
    guard.trade("B-USDT", 10.0, 14.0, 14.0, "b-late")
    assert guard.check_stale(15.1) == (["A-USDT"], [])


def test_a_reconnect_keeps_a_silent_symbol_stale_until_its_own_data() -> None:
    """A reconnection does not make a stale symbol live: it stays stale (no "recovered")
    while silent, and its first message after the reconnect reports it recovered (the only
    "live" that clears its marker); a live symbol's silence counts from the reconnect."""
    guard = QualityGuard("x", config=MarketDataConfig(stale_min_s=2.0, stale_factor=10))
    stale_a(guard)
    guard.on_connected(16.0)
    assert guard.check_stale(16.5) == ([], [])
    assert guard.stats()["stale_symbols"] == 1
    guard.trade("A-USDT", 10.0, 16.6, 16.6, "a-back")
    assert guard.check_stale(16.7) == ([], ["A-USDT"])
    assert guard.check_stale(19.9) == ([], [])  # B: 3.9 s since the reconnect, bound 5 s


def test_a_rebuilt_feeds_guard_keeps_the_old_guards_stale_symbols() -> None:
    """A config reload's new guard inherits the stale symbols: their data reports them
    recovered (else the marker the old guard published would never be cleared)."""
    old = QualityGuard("x", config=MarketDataConfig(stale_min_s=2.0, stale_factor=10))
    stale_a(old)
    new = QualityGuard("x", config=MarketDataConfig(stale_min_s=2.0, stale_factor=10))
    new.inherit_stale(old)
    new.on_connected(16.0)
    assert new.check_stale(16.5) == ([], [])
    new.trade("A-USDT", 10.0, 16.6, 16.6, "a-back")
    assert new.check_stale(16.7) == ([], ["A-USDT"])


def test_prints_a_fresh_book_contradicts_never_confirm_a_move_until_the_book_follows() -> None:
    """Three (four) consistent x10 prints 0.1 s apart while the venue's fresh book stays at
    100: a burst of bad prints, not a move; none goes out and the real book tops still pass
    (found by `evaluate --quality`: such a burst confirmed, and real tops were refused for
    seconds). A real crash to 85 whose prints lead the book: quarantined while the book is
    at 100, accepted as soon as the book follows them."""
    guard = warmed()
    assert guard.book(SYM, 99.99, 100.01, 1010.9) is True
    burst = [
        guard.trade(SYM, 1000.0, 1011.0 + i * 0.1, 1011.0 + i * 0.1, f"x{i}") for i in range(4)
    ]
    assert burst == ["bad_print"] * 4
    assert guard.moves_accepted == 0
    assert guard.book(SYM, 99.99, 100.01, 1011.5) is True
    assert guard.trade(SYM, 100.0, 1011.6, 1011.6, "real") == "ok"

    crash = [guard.trade(SYM, 85.0, 1012.0 + i * 0.1, 1012.0 + i * 0.1, f"c{i}") for i in range(3)]
    assert crash == ["bad_print"] * 3  # the book still says 100
    assert guard.book(SYM, 84.95, 85.05, 1012.4) is True  # the book follows: a real move
    assert guard.moves_accepted == 1
    assert guard.trade(SYM, 85.0, 1012.5, 1012.5, "c9") == "ok"


def test_prints_confirm_a_move_when_no_fresh_book_contradicts_them() -> None:
    """The book last seen longer than `bad_print_mid_follow_s` ago (a venue whose book
    channel is slow or off): three consistent prints still make the move."""
    guard = warmed()
    assert guard.book(SYM, 99.99, 100.01, 1005.0) is True  # 6 s before the prints
    verdicts = [
        guard.trade(SYM, 89.0 + i * 0.1, 1011.0 + i * 0.5, 1011.0 + i * 0.5, f"c{i}")
        for i in range(4)
    ]
    assert verdicts == ["bad_print", "bad_print", "ok", "ok"]


def test_a_markets_first_prints_are_judged_against_its_fresh_book() -> None:
    """A market just subscribed (no price history) whose book top came first: an x10 or
    -25 % print outside the band around the book's mid is quarantined at once (before, the
    first five prices of a market were never judged), genuine first prints pass, and so
    does one outside the band but inside the book's sides (a wide spread)."""
    guard = QualityGuard("x")
    guard.on_connected(1000.0)
    assert guard.book(SYM, 99.9, 100.1, 1000.5) is True
    assert guard.trade(SYM, 1000.0, 1000.6, 1000.6, "x10") == "bad_print"
    assert guard.trade(SYM, 75.0, 1000.7, 1000.7, "down") == "bad_print"
    assert guard.trade(SYM, 100.1, 1000.8, 1000.8, "real") == "ok"
    assert guard.bad_prints == 2
    assert guard.unjudged == 0
    assert guard.book("WIDE-USDT", 80.0, 120.0, 1000.5) is True  # a thin market's spread
    assert guard.trade("WIDE-USDT", 121.0, 1000.6, 1000.6, "edge") == "ok"
    assert guard.trade("WIDE-USDT", 200.0, 1000.7, 1000.7, "far") == "bad_print"
    # the bad prints left no trace: the reference is still the market's real level
    for i in range(6):
        assert guard.trade(SYM, 100.0, 1001.0 + i, 1001.0 + i, f"n{i}") == "ok"
    assert guard.trade(SYM, 1000.0, 1008.0, 1008.0, "late") == "bad_print"


def test_a_markets_first_prints_without_a_fresh_book_pass_counted_unjudged() -> None:
    """No price history and no book seen within bad_print_mid_follow_s: there is nothing to
    judge a first print by; it passes and is counted as unjudged (feed health, /metrics)."""
    guard = QualityGuard("x")
    guard.on_connected(1000.0)
    assert guard.trade(SYM, 100.0, 1000.1, 1000.1, "a") == "ok"
    assert guard.book("ETH-USDT", 9.9, 10.1, 1000.0) is True
    assert guard.trade("ETH-USDT", 10.0, 1002.0, 1002.0, "b") == "ok"  # book 2 s old
    assert guard.unjudged == 2
    assert guard.stats()["unjudged"] == 2


def test_a_burst_in_one_instant_without_a_fresh_book_is_no_move() -> None:
    """Three consistent x10 prints 0.1 s apart and no fresh book (found by `evaluate
    --quality`: a Gate.io burst where the market's book was last seen seconds before went
    out as a move): prints alone confirm only when the level holds for
    bad_print_confirm_hold_s, so every one is quarantined and the reference stays."""
    guard = warmed()
    assert guard.book(SYM, 99.99, 100.01, 1005.0) is True  # 6 s before the burst
    burst = [
        guard.trade(SYM, 1000.0, 1011.0 + i * 0.1, 1011.0 + i * 0.1, f"x{i}") for i in range(3)
    ]
    assert burst == ["bad_print"] * 3
    assert guard.moves_accepted == 0
    assert guard.trade(SYM, 100.0, 1011.4, 1011.4, "real") == "ok"


def test_a_book_at_the_old_level_takes_the_prints_votes_back() -> None:
    """Two x0.5 prints with no fresh book, then a book top still at 100, then the book quiet
    again: the third print (1.6 s after the first, the book 1.1 s old) is no confirmation,
    the book refuted the first two."""
    guard = warmed()
    assert guard.trade(SYM, 50.0, 1011.0, 1011.0, "a") == "bad_print"
    assert guard.trade(SYM, 50.0, 1011.1, 1011.1, "b") == "bad_print"
    assert guard.book(SYM, 99.99, 100.01, 1011.5) is True
    assert guard.trade(SYM, 50.0, 1012.6, 1012.6, "c") == "bad_print"
    assert guard.trade(SYM, 50.0, 1012.8, 1012.8, "d") == "bad_print"
    assert guard.moves_accepted == 0


def test_the_confirmation_hold_must_fit_in_the_window() -> None:
    """A hold longer than bad_print_confirm_s would let no move confirm on prints: refused."""
    with pytest.raises(ValueError, match="bad_print_confirm_hold_s"):
        MarketDataConfig(bad_print_confirm_hold_s=3.0, bad_print_confirm_s=2.0)
