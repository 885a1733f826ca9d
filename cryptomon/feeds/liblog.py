"""What cryptofeed logs that the feed adapter already reports in its own words.

cryptofeed logs a failed symbol load at error level with a traceback, then re-raises; the
adapter catches it and logs each attempt once (``feed.symbols_unavailable``), so the library's
copy is dropped (one line per retry of an offline exchange, not two).
"""

from __future__ import annotations

import logging

CRYPTOFEED_LOGGER = "feedhandler"


class SymbolLoadFailure(logging.Filter):
    """Drops cryptofeed's record of a failed symbol load."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("%s: Failed to parse symbol information")


def quiet_symbol_load_errors() -> None:
    """Install :class:`SymbolLoadFailure` on cryptofeed's logger (once)."""
    logger = logging.getLogger(CRYPTOFEED_LOGGER)
    if not any(isinstance(f, SymbolLoadFailure) for f in logger.filters):
        logger.addFilter(SymbolLoadFailure())
