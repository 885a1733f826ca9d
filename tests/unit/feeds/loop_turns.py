"""Event-loop turns for the converter tests (its BookTops are published at the end of a turn)."""

from __future__ import annotations

import asyncio


async def next_turn() -> None:
    """Return once the current event-loop turn is over: the ``call_soon`` work it scheduled
    (the converter's BookTop flush) has run, since the loop runs its callbacks in order."""
    loop = asyncio.get_running_loop()
    turn_over = loop.create_future()
    loop.call_soon(turn_over.set_result, None)
    await turn_over
