"""Connecting to NATS and declaring the JetStream streams every role expects."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import nats
import structlog
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NoStreamResponseError, NotFoundError

from cryptomon.config import BusConfig
from cryptomon.errors import ConfigError, Problem, TemporaryError
from cryptomon.log import redact_url

log = structlog.get_logger()


def meta_stream(config: BusConfig) -> str:
    return f"{config.stream}_META"


def events_stream(config: BusConfig) -> str:
    return f"{config.stream}_EVENTS"


async def connect(
    config: BusConfig,
    *,
    name: str,
    on_disconnected: Callable[[], None] | None = None,
    on_reconnected: Callable[[], None] | None = None,
) -> Client:
    """A client that reconnects forever; TemporaryError when the first connection fails.
    ``on_disconnected``/``on_reconnected``: told when the connection goes and comes back
    (the brain's feed health: a NATS away is no live feed)."""

    async def disconnected() -> None:
        log.warning("bus.disconnected", client=name)
        if on_disconnected is not None:
            on_disconnected()

    async def reconnected() -> None:
        log.info("bus.reconnected", client=name)
        if on_reconnected is not None:
            on_reconnected()

    async def error(exc: Exception) -> None:
        log.debug("bus.client_error", client=name, error=repr(exc))

    options: dict[str, Any] = {
        "servers": [url.strip() for url in config.nats_url.split(",")],
        "name": name,
        "max_reconnect_attempts": 2,  # the first connection: fail fast; then forever (below)
        "reconnect_time_wait": 0.25,
        "connect_timeout": 2,
        "allow_reconnect": True,
        "disconnected_cb": disconnected,
        "reconnected_cb": reconnected,
        "error_cb": error,
    }
    if config.credentials_file is not None:
        options["user_credentials"] = str(config.credentials_file)
    try:
        client = await nats.connect(**options)
    except Exception as exc:
        raise TemporaryError(
            f"cannot connect to NATS at {redact_url(config.nats_url)} ({exc!r}); start a "
            "nats-server with JetStream there (nats-server -js) or fix bus.nats_url"
        ) from None
    client.options["max_reconnect_attempts"] = -1  # once connected, reconnect forever
    return client


async def ensure_streams(js: JetStreamContext, config: BusConfig) -> None:
    """Create (or update) the market data, metadata and events streams."""
    prefix = config.subject_prefix
    streams = [
        StreamConfig(
            name=config.stream,
            subjects=[f"{prefix}.md.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=config.max_age_s,
            max_bytes=config.max_bytes,
            duplicate_window=config.duplicate_window_s,
        ),
        StreamConfig(
            name=meta_stream(config),
            subjects=[f"{prefix}.instruments.>"],
            storage=StorageType.FILE,
            max_msgs_per_subject=1,
            duplicate_window=config.duplicate_window_s,
        ),
        StreamConfig(
            name=events_stream(config),
            subjects=[f"{prefix}.{kind}.>" for kind in ("anomaly", "signal", "order", "fill")],
            storage=StorageType.FILE,
            max_age=config.events_max_age_s,
            duplicate_window=config.duplicate_window_s,
        ),
    ]
    for stream in streams:
        await _ensure_stream(js, stream, config)


NO_STREAM = (NoStreamResponseError, NoRespondersError)
"""A publish no stream took: NATS came back without its JetStream storage, or someone
deleted a stream."""


async def redeclare_streams(js: JetStreamContext, config: BusConfig, error: object) -> bool:
    """When ``error`` says no stream took a publish, declare the streams again (the caller
    then retries: nothing is lost that it still holds). True when they were declared."""
    if not isinstance(error, NO_STREAM):
        return False
    try:
        await ensure_streams(js, config)
    except Exception as exc:  # NATS away again: the next failure tries again
        log.warning("bus.streams_redeclare_failed", error=repr(exc))
        return False
    log.warning("bus.streams_redeclared", stream=config.stream, reason=repr(error))
    return True


async def _ensure_stream(
    js: Any, stream: StreamConfig, config: BusConfig, attempts: int = 5
) -> None:
    """Create ``stream`` or update it to ``stream``. Two processes starting together (two
    brains, a collector and a brain) race here: the loser's create or update can be refused
    while the winner's creation settles (``subjects overlap``), so it asks again. A stream
    of that name with subjects outside ``bus.subject_prefix`` is another setup's: ConfigError
    (updating it took that setup's stream over)."""
    for attempt in range(attempts):
        try:
            await js.add_stream(stream)
            return
        except BadRequestError:
            await _check_owner(js, stream, config)
            try:
                await js.update_stream(stream)
                return
            except BadRequestError:
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))


async def _check_owner(js: Any, stream: StreamConfig, config: BusConfig) -> None:
    """ConfigError when the existing stream ``stream.name`` carries subjects that are not
    under this setup's ``bus.subject_prefix``: another setup shares the stream name."""
    try:
        info = await js.stream_info(stream.name)
    except NotFoundError:  # deleted meanwhile: creating it again is ours to do
        return
    found = list(info.config.subjects or [])
    prefix = config.subject_prefix
    foreign = [s for s in found if not s.startswith(f"{prefix}.")]
    if not foreign:
        return
    shown = ", ".join(found[:8]) + (", ..." if len(found) > 8 else "")
    raise ConfigError(
        [
            Problem(
                "bus.stream",
                config.stream,
                f"a stream name per setup: NATS stream {stream.name!r} exists with subjects "
                f"{shown}, not under this setup's bus.subject_prefix {prefix!r} (another "
                "setup's stream: updating it would take that setup's messages over); set "
                "bus.stream to a name of this setup's own, or bus.subject_prefix to the "
                "other setup's if this is the same setup",
            )
        ]
    )
