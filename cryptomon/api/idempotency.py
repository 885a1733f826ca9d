"""Idempotency keys of manual orders: the same key must come with the same body.

The order engine dedupes by key (a retry returns the first order); this ledger remembers the
body each key was first used with, so a reused key with a *different* body is refused (422)
instead of silently answering with an order the caller did not ask for.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

_MAX_KEYS = 100_000  # bound of the ledger (LRU evicted)


class IdempotencyLedger:
    """Bounded map ``key -> digest of the body first seen with it``."""

    def __init__(self, max_keys: int = _MAX_KEYS) -> None:
        self.max_keys = max_keys
        self._seen: OrderedDict[str, bytes] = OrderedDict()
        self.conflicts = 0

    def claim(self, key: str, body: str) -> bool:
        """Record ``body`` for ``key``; True when ``key`` was used before with another body."""
        digest = hashlib.sha256(body.encode("utf-8")).digest()
        first = self._seen.get(key)
        if first is None:
            self._seen[key] = digest
            if len(self._seen) > self.max_keys:
                self._seen.popitem(last=False)
            return False
        self._seen.move_to_end(key)
        if first != digest:
            self.conflicts += 1
            return True
        return False
