"""Fixes of cryptofeed's parsers for what real venues send, applied by subclassing the
venue's cryptofeed class (:func:`fixed_class`); each names the venue behaviour it meets.

- Kraken Futures leaves a field out of its ``ticker`` message when its value is zero
  (``funding_rate_prediction`` at a zero prediction). cryptofeed's parser reads that field
  unconditionally: the KeyError lost the whole message, its funding and its open interest
  (the feed logs the error and reads on). A prediction left out is the zero it stands for.
"""

from __future__ import annotations

from functools import cache
from typing import Any

# Kraken Futures ticker fields the venue leaves out when zero, which cryptofeed's parser reads
_KRAKEN_FUTURES_ZERO_FIELDS = ("funding_rate_prediction",)


class KrakenFuturesFix:
    """Kraken Futures: the ticker's zero fields left out are filled in before cryptofeed
    parses it (``relative_*`` fields stay as sent: the converter tells a left-out relative
    rate from an unknown one, :mod:`cryptomon.feeds.rare`)."""

    async def _funding(self, msg: dict[str, Any], pair: str, timestamp: float) -> None:
        if "funding_rate" in msg:
            missing = [k for k in _KRAKEN_FUTURES_ZERO_FIELDS if k not in msg]
            if missing:
                msg = {**msg, **dict.fromkeys(missing, 0)}
        await getattr(super(), "_funding")(msg, pair, timestamp)  # noqa: B009 - mixin


FIXES: dict[str, type] = {"KRAKEN_FUTURES": KrakenFuturesFix}
"""cryptofeed exchange id -> the mixin fixing its parser."""


@cache
def fixed_class(cls: type) -> type:
    """``cls`` (a cryptofeed feed class) with its venue's fix, or ``cls`` when it has none
    (one class per venue class: cached)."""
    fix = FIXES.get(str(getattr(cls, "id", "")))
    if fix is None or issubclass(cls, fix):
        return cls
    return type(cls.__name__, (fix, cls), {})
