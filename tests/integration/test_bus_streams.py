"""Streams on the shared nats-server (127.0.0.1:4222) belong to one setup: a second setup
with the same ``bus.stream`` and another ``bus.subject_prefix`` took the first one's stream
over at start (its subjects replaced), silently."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest

from cryptomon.bus.connect import ensure_streams, events_stream, meta_stream
from cryptomon.config import BusConfig
from cryptomon.errors import ConfigError
from tests.integration.bus_support import bus_section, replay_exchange, spawn, write_config

pytestmark = pytest.mark.timeout(90)

NATS_URL = "nats://127.0.0.1:4222"


@contextlib.asynccontextmanager
async def jetstream(config: BusConfig) -> AsyncIterator[Any]:
    """A JetStream context on the shared server; the test's streams are deleted after."""
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    try:
        yield js
    finally:
        for name in (config.stream, meta_stream(config), events_stream(config)):
            with contextlib.suppress(Exception):
                await js.delete_stream(name)
        await nc.close()


def two_setups() -> tuple[BusConfig, BusConfig]:
    """Setup A and setup B: the same stream name, each its own subject prefix."""
    first = BusConfig.model_validate(bus_section(NATS_URL))
    other = BusConfig.model_validate(
        {**first.model_dump(), "subject_prefix": f"t{uuid.uuid4().hex[:8]}"}
    )
    return first, other


async def subjects(js: Any, stream: str) -> list[str]:
    return list((await js.stream_info(stream)).config.subjects)


@pytest.mark.asyncio
async def test_a_second_setup_on_the_same_stream_name_fails_and_leaves_it_alone() -> None:
    """B's start fails with one ConfigError naming bus.stream, bus.subject_prefix, the
    subjects found and what to do; A's streams keep their subjects."""
    first, other = two_setups()
    async with jetstream(first) as js:
        await ensure_streams(js, first)
        before = {n: await subjects(js, n) for n in (first.stream, meta_stream(first))}
        with pytest.raises(ConfigError) as caught:
            await ensure_streams(js, other)
        message = str(caught.value)
        assert "bus.stream" in message
        assert "bus.subject_prefix" in message
        assert first.stream in message
        assert other.subject_prefix in message
        assert f"{first.subject_prefix}.md.>" in message  # the subjects found
        assert "a stream name per setup" in message
        after = {n: await subjects(js, n) for n in (first.stream, meta_stream(first))}
        assert after == before
        await ensure_streams(js, first)  # the owner declares its streams again as before


@pytest.mark.asyncio
async def test_streams_deleted_are_declared_again() -> None:
    """NATS back without its storage (here: the streams deleted): declaring them again
    still works."""
    first, _other = two_setups()
    async with jetstream(first) as js:
        await ensure_streams(js, first)
        await js.delete_stream(first.stream)
        await ensure_streams(js, first)
        assert await subjects(js, first.stream) == [f"{first.subject_prefix}.md.>"]


@pytest.mark.asyncio
async def test_a_collector_on_another_setups_stream_exits_2_naming_bus_stream(
    tmp_path: Path, shared_data: Path
) -> None:
    """``crypto-monitor run --role collector`` of setup B: exit 2 (as a bad config at start),
    one line naming bus.stream and bus.subject_prefix; setup A's stream untouched."""
    first, other = two_setups()
    async with jetstream(first) as js:
        await ensure_streams(js, first)
        cfg = write_config(
            tmp_path / "b.yaml",
            exchanges=[replay_exchange(shared_data, "OKX")],
            bus={
                **bus_section(NATS_URL),
                **other.model_dump(
                    mode="json", include={"stream", "subject_prefix", "durable", "lease_bucket"}
                ),
                "collector_id": "b",
            },
            api={"enabled": False},
        )
        proc = await spawn(cfg, "collector")
        try:
            _, err = await asyncio.wait_for(proc.communicate(), 60)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise AssertionError("the collector of setup B started on setup A's stream") from None
        text = err.decode(errors="replace")
        assert proc.returncode == 2, text[-3000:]
        assert "bus.stream" in text
        assert "bus.subject_prefix" in text
        assert await subjects(js, first.stream) == [f"{first.subject_prefix}.md.>"]
