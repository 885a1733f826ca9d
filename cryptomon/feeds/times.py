"""Exchange times as epoch seconds.

cryptofeed normalizes most venues' times to epoch seconds, but some parsers pass the venue's
epoch milliseconds through (Bybit: trades' ``T``, tickers', funding's and open interest's
``ts``, ``nextFundingTime``, candles' ``start``/``end``, books' ``ts``). An event time in
milliseconds is ~1000x every other time (history, staleness, detector windows and candle
buckets all read it as seconds), so the converter reads every exchange time through
:func:`epoch_s`: a value above ``MS_ABOVE`` (1e11 s is the year 5138; 1e11 ms is 1973) is
milliseconds and is divided by 1000.
"""

from __future__ import annotations

MS_ABOVE = 1e11


def epoch_s(value: float) -> float:
    """``value`` (epoch seconds or milliseconds) in epoch seconds."""
    return value / 1000.0 if value > MS_ABOVE else value


def epoch_s_or_none(value: float | None) -> float | None:
    """:func:`epoch_s` of an optional time."""
    return None if value is None else epoch_s(float(value))
