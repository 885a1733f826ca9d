"""The live broker's real transport against a closed loopback port (moved from the unit tests:
it opens sockets): start() retries, then fails with a TemporaryError and cleans up."""

from __future__ import annotations

import pytest

from cryptomon.config import LiveTradingConfig
from cryptomon.errors import TemporaryError
from cryptomon.trading.brokers.ccxt import CcxtBroker


@pytest.mark.asyncio
async def test_unreachable_venue_fails_start_with_a_temporary_error() -> None:
    """start() against a closed port retries, then raises TemporaryError and cleans up."""
    broker = CcxtBroker(
        LiveTradingConfig(url="http://127.0.0.1:9", timeout_ms=500), read_attempts=2
    )
    with pytest.raises(TemporaryError, match="ccxt:binance"):
        await broker.start()
    assert broker.exchange is None
