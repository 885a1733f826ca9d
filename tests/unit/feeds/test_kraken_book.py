"""KrakenBooks keeps exactly the books, deltas and callbacks of cryptofeed's truncating Kraken
books: on the shared recording and on random messages that insert, update and remove levels
around a small depth (every level of both sides compared after every message)."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptofeed.exchanges.kraken import Kraken

from cryptomon.feeds.cryptofeed import CF_CONFIG
from cryptomon.feeds.kraken_book import KrakenBooks, book_mixins
from cryptomon.feeds.replay import Recording, _RecordedSymbols

PAIR = "BTC-USD"


class _Ours(KrakenBooks, Kraken):
    pass


def _feeds(depth: int, subscription: dict[str, list[str]]) -> tuple[Any, Any, dict[str, list]]:
    seen: dict[str, list[Any]] = {"ref": [], "ours": []}

    def feed(cls: type, tag: str) -> Any:
        async def book(update: Any, receipt: float) -> None:
            seen[tag].append(
                (
                    receipt,
                    update.symbol,
                    update.delta,
                    update.checksum,
                    update.raw,
                    update.timestamp,
                )
            )

        return cls(
            candle_closed_only=False,
            config=CF_CONFIG,
            subscription=subscription,
            callbacks={"l2_book": book},
            max_depth=depth,
        )

    return feed(Kraken, "ref"), feed(_Ours, "ours"), seen


def _levels(feed: Any, pair: str) -> tuple[list[tuple[Any, Any]], list[tuple[Any, Any]]]:
    """Every level the book holds (iteration walks all of a side, past ``max_depth``)."""
    book = feed._l2_book[pair].book
    return (
        [(p, book.bids[p]) for p in book.bids],
        [(p, book.asks[p]) for p in book.asks],
    )


@pytest.fixture
def kraken_recording(shared_data: Path) -> Recording:
    recording = Recording(sorted(shared_data.glob("KRAKEN.*")))
    loader: Any = type(
        "RecordedKraken", (Kraken,), {"http_sync": _RecordedSymbols(recording.symbol_data)}
    )
    loader.symbol_mapping(refresh=True)
    return recording


def test_book_mixins_only_for_kraken() -> None:
    assert book_mixins(Kraken) == (KrakenBooks,)
    assert book_mixins(_Ours) == ()
    from cryptofeed.exchanges import Binance

    assert book_mixins(Binance) == ()


@pytest.mark.asyncio
@pytest.mark.parametrize("depth", [20, 10, 3])
async def test_recorded_kraken_books_equal_cryptofeeds(
    kraken_recording: Recording, depth: int
) -> None:
    subscription = {k: v for k, v in kraken_recording.subscription.items() if k == "l2_book"}
    ref, ours, seen = _feeds(depth, subscription)
    messages = 0
    for path in kraken_recording.ws_files:
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line or line[:3] in {"wss", "ws:", "htt"}:
                continue
            ts, _, message = line.partition(": ")
            await ref.message_handler(message, None, float(ts))
            await ours.message_handler(message, None, float(ts))
            messages += 1
            for pair in ref._l2_book:
                assert _levels(ours, pair) == _levels(ref, pair), (messages, pair)
    assert messages > 4000
    assert len(seen["ref"]) > 4000
    assert seen["ours"] == seen["ref"]


def _price(rng: random.Random) -> str:
    return f"{rng.randint(90, 110)}.{rng.choice(['0', '5', '50'])}"


def _message(rng: random.Random, channel_id: int) -> list[Any]:
    """A Kraken book update: bid and/or ask levels (zero sizes remove, some of them levels
    that are not there), sometimes in two parts, with a checksum."""
    parts: list[dict[str, Any]] = []
    for key in rng.sample(["a", "b"], rng.randint(1, 2)):
        updates = []
        for _ in range(rng.randint(1, 4)):
            size = "0.00000000" if rng.random() < 0.35 else f"{rng.randint(1, 9)}.25"
            updates.append([_price(rng), size, "1618678152.818875"])
        parts.append({key: updates})
    parts[0]["c"] = str(rng.randint(1, 10**9))
    return [channel_id, *parts, "book-25", "XBT/USD"]


def _snapshot(rng: random.Random, channel_id: int) -> list[Any]:
    bids = [[f"{p}.0", "1.5", "1.0"] for p in rng.sample(range(80, 100), rng.randint(1, 15))]
    asks = [[f"{p}.0", "2.5", "1.0"] for p in rng.sample(range(101, 121), rng.randint(1, 15))]
    return [channel_id, {"as": asks, "bs": bids}, "book-25", "XBT/USD"]


@pytest.mark.asyncio
@pytest.mark.parametrize("seed", range(6))
async def test_random_kraken_books_equal_cryptofeeds(
    kraken_recording: Recording, seed: int
) -> None:
    rng = random.Random(seed)
    depth = rng.choice([2, 3, 5])
    ref, ours, seen = _feeds(depth, {})
    for step in range(400):
        msg = _snapshot(rng, 7) if step == 0 or rng.random() < 0.02 else _message(rng, 7)
        await ref._book(msg, PAIR, float(step))
        await ours._book(msg, PAIR, float(step))
        assert _levels(ours, PAIR) == _levels(ref, PAIR), (seed, step)
        assert ours._l2_book[PAIR].book.bids.to_list() == ref._l2_book[PAIR].book.bids.to_list()
    assert seen["ours"] == seen["ref"]
    assert any(
        Decimal(0) in [size for _, size in call[2]["bid"]] for call in seen["ref"] if call[2]
    )
