"""Protective exits never wait for the database: a local fsync'd journal under ``data_dir``.

:class:`ExitJournal` wraps the engine's :class:`~cryptomon.trading.journal.Journal`. An
intent whose origin is protective (stop-loss, take-profit, kill-switch flatten) is written to
the database with a short timeout; when that fails, it is appended to a local JSON-lines file
(flushed and fsync'd) and the call returns, so the exit is sent at once. A background task
folds the spooled intents into the database when it returns, with capped exponential backoff;
the database write is an idempotent upsert on the client order id, so each intent lands
exactly once, whether the writer or the fold gets there first. Other intents go to the
database only (an entry may wait; an exit may not). At startup, spooled intents the database
never got are folded first, or reported as open orders so reconciliation looks them up.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import Collection
from dataclasses import fields
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog

from cryptomon.events import OrderIntent, ProtectionUpdate, RiskEvent
from cryptomon.tasks import cancel_and_wait
from cryptomon.trading.journal import (
    EquityJournal,
    FundingJournal,
    HaltJournal,
    IntentJournal,
    Journal,
    StoredFunding,
    StoredOrder,
    TrailJournal,
)

log = structlog.get_logger()
PROTECTIVE_ORIGINS = frozenset({"stop_loss", "take_profit", "kill_switch"})
DECIMAL_FIELDS = frozenset({"amount", "price", "stop_price", "stop_loss", "take_profit"})
FILE_NAME = "exit-journal.jsonl"


def encode(intent: OrderIntent) -> str:
    """One JSON line: Decimals as strings (no float rounding of money)."""
    row: dict[str, Any] = {}
    for f in fields(intent):
        value = getattr(intent, f.name)
        row[f.name] = str(value) if isinstance(value, Decimal) else value
    return json.dumps(row, sort_keys=True)


def decode(line: str) -> OrderIntent:
    row = json.loads(line)
    for name in DECIMAL_FIELDS:
        if row.get(name) is not None:
            row[name] = Decimal(row[name])
    known = {f.name for f in fields(OrderIntent)}
    return OrderIntent(**{k: v for k, v in row.items() if k in known})


class ExitJournal:
    """A :class:`Journal` whose protective intents survive a database outage locally."""

    def __init__(
        self,
        *,
        inner: Journal,
        data_dir: Path,
        timeout_s: float = 2.0,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
    ) -> None:
        self.inner = inner
        self.path = Path(data_dir) / FILE_NAME
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.spooled = 0
        self.folded = 0
        self._fold_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ Journal

    async def record_intent(self, intent: OrderIntent) -> None:
        if intent.origin not in PROTECTIVE_ORIGINS:
            await self.inner.record_intent(intent)
            return
        try:
            await asyncio.wait_for(self.inner.record_intent(intent), self.timeout_s)
        except Exception as exc:  # the database is away: the exit must not wait for it
            self._append(intent)
            log.warning(
                "trading.exit_journaled",
                client_order_id=intent.client_order_id,
                origin=intent.origin,
                path=str(self.path),
                error=repr(exc),
            )
            self._ensure_fold()

    async def open_orders(self) -> list[StoredOrder]:
        await self.fold_once()
        stored = await self.inner.open_orders()
        known = {s.intent.client_order_id for s in stored}
        # still spooled (the database refused the fold): reconciliation must look them up
        stored += [StoredOrder(intent=i) for i in self.pending() if i.client_order_id not in known]
        return stored

    async def fills(self) -> list[Any]:
        return await self.inner.fills()

    async def record_equity(self, **values: Any) -> None:
        await self.inner.record_equity(**values)

    async def last_risk_state(self) -> str | None:
        return await self.inner.last_risk_state()

    async def halt_flatten(self) -> bool:
        return isinstance(self.inner, HaltJournal) and await self.inner.halt_flatten()

    async def record_risk_event(self, event: RiskEvent) -> None:
        if isinstance(self.inner, HaltJournal):
            await self.inner.record_risk_event(event)

    async def first_equity_since(self, ts: float) -> Decimal | None:
        if isinstance(self.inner, EquityJournal):
            return await self.inner.first_equity_since(ts)
        return None

    async def stored_intents(self, client_order_ids: Collection[str]) -> dict[str, OrderIntent]:
        if isinstance(self.inner, IntentJournal):
            return await self.inner.stored_intents(client_order_ids)
        return {}

    async def stored_trails(self) -> dict[tuple[str, str], ProtectionUpdate]:
        if isinstance(self.inner, TrailJournal):
            return await self.inner.stored_trails()
        return {}

    async def record_funding(self, funding: StoredFunding) -> None:
        if isinstance(self.inner, FundingJournal):
            await self.inner.record_funding(funding)

    async def funding_payments(self) -> list[StoredFunding]:
        if isinstance(self.inner, FundingJournal):
            return await self.inner.funding_payments()
        return []

    # ------------------------------------------------------------------ the local file

    def pending(self) -> list[OrderIntent]:
        """The intents spooled and not yet folded into the database (one per order id)."""
        if not self.path.exists():
            return []
        out: dict[str, OrderIntent] = {}
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                intent = decode(line)
            except (ValueError, TypeError) as exc:  # a torn last line after a crash
                log.warning("trading.exit_journal_bad_line", path=str(self.path), error=str(exc))
                continue
            out.setdefault(intent.client_order_id, intent)
        return list(out.values())

    def _append(self, intent: OrderIntent) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(encode(intent) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.spooled += 1

    def _rewrite(self, keep: list[OrderIntent]) -> None:
        """Replace the file atomically with ``keep`` (fsync'd; removed when empty)."""
        if not keep:
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            fh.writelines(encode(i) + "\n" for i in keep)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)

    # ------------------------------------------------------------------ folding

    async def fold_once(self) -> bool:
        """Write every spooled intent to the database; True when the spool is empty."""
        done: set[str] = set()
        for intent in self.pending():
            try:
                await asyncio.wait_for(self.inner.record_intent(intent), self.timeout_s)
            except Exception as exc:
                log.info("trading.exit_fold_failed", error=repr(exc))
                break  # still away: try again after the backoff
            done.add(intent.client_order_id)
            self.folded += 1
            log.info("trading.exit_folded", client_order_id=intent.client_order_id)
        # read again: an exit spooled while this fold awaited is kept
        left = [i for i in self.pending() if i.client_order_id not in done]
        self._rewrite(left)
        return not left

    def _ensure_fold(self) -> None:
        if self._fold_task is None or self._fold_task.done():
            self._fold_task = asyncio.get_running_loop().create_task(
                self._fold_loop(), name="exit-journal-fold"
            )

    async def _fold_loop(self) -> None:
        delay = self.backoff_s
        while True:
            await asyncio.sleep(delay * (0.5 + random.random() / 2))  # noqa: S311 - jitter
            if await self.fold_once():
                return
            delay = min(delay * 2, self.backoff_max_s)

    async def aclose(self) -> None:
        """Stop folding (the spool stays on disk for the next start)."""
        await cancel_and_wait(self._fold_task)
        self._fold_task = None
