"""Fixtures of the notification tests: real loopback sinks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from tests.unit.notify.sinks import DeadSink, HttpSink, SmtpSink


@pytest_asyncio.fixture
async def http_sink() -> AsyncIterator[HttpSink]:
    sink = await HttpSink().start()
    yield sink
    await sink.close()


@pytest_asyncio.fixture
async def dead_sink() -> AsyncIterator[DeadSink]:
    sink = await DeadSink().start()
    yield sink
    await sink.close()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.close()
