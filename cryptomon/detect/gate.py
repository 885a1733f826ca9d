"""The warm-up gate of the engine: what each detector has seen of each market.

Every detector declares a :class:`~cryptomon.detect.base.Warmup` (samples and seconds of its
input per market); the engine counts the events of each source per market and the event time
of the first one, and drops a finding of a market that has not passed its detector's
warm-up. Counting is one numba pass per batch; the check runs only for the rare rows that
fire, and a market that passed stays passed.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

import numpy as np

from cryptomon.config import AnomalyDetectionConfig
from cryptomon.detect.base import Warmup
from cryptomon.detect.detectors_nb import count_seen_nb, rows_before_nb
from cryptomon.detect.registry import DeclaresWarmup, Detector, Source

NO_WARMUP = Warmup(samples=0, seconds=0.0)


class SourceSeen:
    """Events of one source per market id so far, the earliest event time (the minimum,
    not the first: a book from a REST snapshot may carry a receipt time ahead of the
    exchange times that follow) and the time of the last event counted (in batch order)."""

    __slots__ = ("count", "first", "last")

    def __init__(self) -> None:
        self.count = np.zeros(0, dtype=np.int64)
        self.first = np.zeros(0)
        self.last = np.zeros(0)

    def resize(self, n: int) -> None:
        if n > self.count.shape[0]:
            size = max(n, 2 * self.count.shape[0], 64)
            count = np.zeros(size, dtype=np.int64)
            count[: self.count.shape[0]] = self.count
            first = np.full(size, math.nan)
            first[: self.first.shape[0]] = self.first
            last = np.full(size, math.nan)
            last[: self.last.shape[0]] = self.last
            self.count, self.first, self.last = count, first, last

    def add(self, sid: np.ndarray, ts: np.ndarray) -> None:
        """Count one batch (after its findings were checked)."""
        need = count_seen_nb(sid, ts, self.count, self.first, self.last)
        if need:  # a market beyond the arrays: nothing was counted; grow, count
            self.resize(need)
            count_seen_nb(sid, ts, self.count, self.first, self.last)

    def not_before_last(self, sid: np.ndarray, ts: np.ndarray) -> list[int] | None:
        """Rows at or after their market's last counted event (None: every row)."""
        if sid.shape[0] == 0:
            return None
        self.resize(int(sid.max()) + 1)
        late = ts < self.last[sid]  # NaN (nothing seen yet): False
        if not late.any():
            return None
        return np.flatnonzero(~late).tolist()

    def at_row(self, sid: np.ndarray, ts: np.ndarray, row: int) -> tuple[int, float]:
        """(events, seconds since the first) of the market of ``row`` up to that row."""
        s = int(sid[row])
        mine, earliest = rows_before_nb(sid, ts, row)
        before = int(self.count[s]) if s < self.count.shape[0] else 0
        first = float(self.first[s]) if s < self.first.shape[0] else math.nan
        if not (first <= earliest or math.isnan(earliest)):  # np.fmin, without a ufunc call
            first = earliest
        return before + mine, float(ts[row]) - first


class WarmupGate:
    """Per detector and market: its warm-up, and whether the market passed it; the same per
    kind of a detector whose kind declares a longer one (:attr:`Warmup.kinds`)."""

    def __init__(self) -> None:
        self.seen: dict[Source, SourceSeen] = {source: SourceSeen() for source in Source}
        # key: id(detector), or (id(detector), finding code) of a kind's own warm-up
        self._need: dict[Hashable, list[Warmup]] = {}  # key -> warm-up per market id
        self._ready: dict[Hashable, list[bool]] = {}
        self._later: dict[int, dict[int, list[bool]]] = {}  # id(det) -> code -> ready
        # id(detector) -> market id -> (samples, earliest event time) it was warmed with
        # outside its source's counts (1-minute candles at start: see :meth:`credit`)
        self._credit: dict[int, dict[int, tuple[int, float]]] = {}

    @staticmethod
    def declared(det: Detector, cfg: AnomalyDetectionConfig) -> Warmup:
        """The detector's own warm-up; none for a detector that declares none."""
        if isinstance(det, DeclaresWarmup):
            return det.warmup(cfg)
        return NO_WARMUP

    def configure(self, det: Detector, sid: int, warmup: Warmup) -> None:
        self._configure(id(det), sid, warmup)
        later = self._later.setdefault(id(det), {})
        for code, warm in warmup.kinds:
            later[code] = self._configure((id(det), code), sid, warm)
        self._credit.get(id(det), {}).pop(sid, None)

    def _configure(self, key: Hashable, sid: int, warmup: Warmup) -> list[bool]:
        need = self._need.setdefault(key, [])
        ready = self._ready.setdefault(key, [])
        while len(need) <= sid:
            need.append(warmup)
            ready.append(False)
        need[sid] = warmup
        ready[sid] = warmup.samples <= 0 and warmup.seconds <= 0
        return ready

    def credit(self, det: Detector, sid: int, samples: int, first: float) -> None:
        """``det`` alone has seen ``samples`` events of market ``sid`` since ``first`` (event
        time) that its source's counts do not hold: the detector's windows were warmed from
        data that the other detectors of the same source did not get (stored candles warm
        price and volume, never the whale window), so they stay cold."""
        self._credit.setdefault(id(det), {})[sid] = (samples, first)

    def ready(self, det: Detector) -> list[bool]:
        """Per market id, whether it passed ``det``'s warm-up (for a quick look before
        :meth:`passed`; a market not ready yet may pass at a row of this batch)."""
        return self._ready[id(det)]

    def later(self, det: Detector) -> dict[int, list[bool]]:
        """Finding code -> per market id, whether it passed the longer warm-up of that kind
        (empty: every kind of ``det`` reports after the detector's own)."""
        return self._later.get(id(det), {})

    def passed(
        self, det: Detector, source: Source, cols: Any, row: int, code: int | None = None
    ) -> bool:
        """Whether the market of ``row`` of this batch passed ``det``'s warm-up at that row
        (``code``: the longer warm-up of that kind, see :meth:`later`)."""
        key: Hashable = id(det) if code is None else (id(det), code)
        sid: np.ndarray = cols.sid
        s = int(sid[row])
        ready = self._ready[key]
        if ready[s]:
            return True
        need = self._need[key][s]
        samples, seconds = self.seen[source].at_row(sid, cols.ts, row)
        credit = self._credit.get(id(det), {}).get(s)
        if credit is not None:
            samples += credit[0]
            seconds = max(seconds, float(cols.ts[row]) - credit[1])
        if samples >= need.samples and seconds >= need.seconds:
            ready[s] = True
        return ready[s]
