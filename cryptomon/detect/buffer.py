"""The detector engine's event buffers: the inline hub handler of one source and the batch it
fills (DESIGN.md section 6).

The handler runs once per market event inside ``hub.publish``, so it does as little as the
interpreter allows: it stores the event into a preallocated list slot (``buf[n] = ev``, an
indexed store the interpreter specialises; no method call) and bumps a counter held in a
closure cell. Compared with ``list.append`` plus ``len`` per event this halves the handler's
cost over the hub's own dispatch. The engine hears from the buffer on two edges only: the
first event of a batch (schedule the flush) and a full batch (``cap`` events: flush now).
The list starts small and doubles up to ``cap`` when a batch outgrows it (a third, rare
edge handled here), so a large ``batch_size`` costs no memory until a loop turn needs it.
``take`` hands over the list of a large batch and starts a new one, but copies a short batch
out and clears its slots (a quiet loop turn of one event costs O(1), not O(slots)).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

INITIAL_SLOTS = 1024  # slots of a fresh buffer (at most ``cap``)


class EventBuffer(NamedTuple):
    """``put`` is the inline handler; ``take()`` returns the buffered events in order and
    empties the buffer; ``size()`` is how many it holds."""

    put: Callable[[Any], None]
    take: Callable[[], list[Any]]
    size: Callable[[], int]


def event_buffer(cap: int, edge: Callable[[int], None]) -> EventBuffer:
    """A buffer that calls ``edge(n)`` after the first event of a batch (``n == 1``) and
    after the ``cap``-th (``n >= cap``); ``edge`` is expected to ``take()`` a full batch."""
    slots = min(cap, INITIAL_SLOTS)
    buf: list[Any] = [None] * slots
    n = 0
    # the next count that needs a look: 1 (the first event of a batch), then the end of the
    # list or of the batch; one comparison per event
    limit = 1

    def put(ev: Any) -> None:
        nonlocal n
        buf[n] = ev
        n += 1
        if n >= limit:
            _edge()

    def _edge() -> None:
        nonlocal limit
        if n == 1 or n >= cap:
            edge(n)
        if n >= len(buf):  # the list is full and the batch was not taken: room to grow
            buf.extend([None] * min(len(buf), max(cap - len(buf), 1)))
        # 1: ``edge`` took the batch
        limit = 1 if n == 0 else (min(cap, len(buf)) if n < cap else len(buf))

    def take() -> list[Any]:
        nonlocal buf, n, limit
        if n * 4 < slots and len(buf) == slots:
            # a short batch (a quiet loop turn): copy it out and clear its slots, O(n)
            # rather than trimming and reallocating every slot of the list
            evs = buf[:n]
            buf[:n] = [None] * n
        else:
            evs = buf
            del evs[n:]
            buf = [None] * slots
        n = 0
        limit = 1
        return evs

    def size() -> int:
        return n

    return EventBuffer(put, take, size)
