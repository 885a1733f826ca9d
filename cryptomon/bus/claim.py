"""Keys of the lease bucket that one process at a time holds (DESIGN.md section 8).

The bucket ``bus.lease_bucket`` expires its entries ``bus.lease_ttl_s`` after they were
written. A holder takes a key with ``create`` (only if nobody holds it) and keeps it with
``update`` on the revision it wrote last; any other writer makes that update fail.

:class:`DurableClaim` is the brain's claim on its durable consumer (key
``consumer.<durable>``): two brains started with one config would otherwise share the durable,
each getting about half of the market data, and each one's acknowledgement (ack policy
``all``) would cover what the other was still processing. The trading lease
(:mod:`.lease`) uses the same bucket, keyed by account.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from typing import Any

import structlog
from nats.js.api import KeyValueConfig
from nats.js.errors import BadRequestError, BucketNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from cryptomon.config import BusConfig

log = structlog.get_logger()


def holder_name() -> str:
    """This process, as a lease or claim holder names it."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def open_bucket(js: Any, config: BusConfig, attempts: int = 5) -> KeyValue:
    """Open the lease bucket, creating it if missing. Two brains starting together race
    here: the loser's creation is refused (``subjects overlap``) while the winner's settles,
    so it looks again for the bucket the winner made."""
    for attempt in range(attempts):
        try:
            return await js.key_value(config.lease_bucket)
        except BucketNotFoundError:
            pass
        try:
            return await js.create_key_value(
                KeyValueConfig(bucket=config.lease_bucket, history=1, ttl=config.lease_ttl_s)
            )
        except BadRequestError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


class DurableClaim:
    """See the module docstring. :meth:`take` every third of the TTL; ``held`` says whether
    this brain may consume the durable."""

    def __init__(self, js: Any, config: BusConfig) -> None:
        self.js = js
        self.config = config
        self.key = f"consumer.{config.durable}"
        self.holder = holder_name()
        self.revision: int | None = None
        self.other: str | None = None  # the holder when another process has the claim
        self.kv: KeyValue | None = None
        self.error: str | None = None  # the last write failed (NATS away, no permission)

    @property
    def held(self) -> bool:
        return self.revision is not None

    async def take(self) -> bool:
        """Take the claim if free, keep it if ours; True while held. NATS unreachable: what
        was held stays held (nothing can be fetched meanwhile; the next write tells)."""
        try:
            if self.kv is None:
                self.kv = await open_bucket(self.js, self.config)
            value = self.holder.encode()
            if self.revision is not None:
                try:
                    self.revision = await self.kv.update(self.key, value, last=self.revision)
                except KeyWrongLastSequenceError:  # expired (NATS away) or taken: create
                    self.revision = None
            if self.revision is None:
                self.revision = await self.kv.create(self.key, value)
            self.other = None
            self.error = None
        except KeyWrongLastSequenceError:
            self.revision = None
            self.other = await self._current()
            self.error = None
        except Exception as exc:  # NATS away, the bucket gone: opened again next time
            self.kv = None
            self.error = repr(exc)
            log.warning("bus.durable_claim_failed", durable=self.config.durable, error=repr(exc))
        return self.held

    async def _current(self) -> str | None:
        with contextlib.suppress(Exception):
            assert self.kv is not None
            entry = await self.kv.get(self.key)
            return entry.value.decode() if entry.value else None
        return None

    async def release(self) -> None:
        """Let a waiting brain take over at once."""
        if self.kv is not None and self.revision is not None:
            with contextlib.suppress(Exception):
                await self.kv.delete(self.key, last=self.revision)
        self.revision = None
