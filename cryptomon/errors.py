"""The error families every component uses (DESIGN.md 3.4).

- ``ConfigError``: bad configuration or CLI input; the process exits 2 with one line per problem.
- ``TemporaryError``: worth retrying (network blips, 429, 5xx, database failover); callers retry
  with capped exponential backoff and jitter (see :func:`backoff_delays`).
- ``FatalError``: the component cannot go on; it stops and the failure is reported.
- ``OperatorError``: a ``FatalError`` a restart cannot fix (a database schema that is not this
  version's head, keys the venue refuses); the daemon's start exits 2 like a config error, so
  a supervisor (systemd's ``RestartPreventExitStatus=2``) does not restart it in a loop.
- ``RiskRejected``: an order intent failed a risk check; carries the reason.
- ``RepeatedKey``: a JSON object names a key twice (:func:`unique_keys`, the
  ``object_pairs_hook`` for ``json.loads``, which otherwise keeps the last silently).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


class Found(str):
    """What was found where no value can be shown (a missing file, a directory, text that
    is not YAML): printed as is, where a value is printed as its repr."""

    def __repr__(self) -> str:
        return str(self)


@dataclass(frozen=True, slots=True)
class Problem:
    """One configuration problem: where, what was found, what was expected."""

    path: str
    value: object
    expected: str

    def __str__(self) -> str:
        shown = repr(self.value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        return f"{self.path}: got {shown}; expected {self.expected}"


def listen_problem(host: str, port: int, exc: OSError) -> Problem:
    """``api.port`` that cannot be listened on (in use, not permitted), naming the address."""
    return Problem(
        "api.port",
        port,
        f"a port free to listen on: cannot listen on {host}:{port} ({exc.strerror})",
    )


class CryptomonError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(CryptomonError):
    """Invalid configuration or command-line input."""

    def __init__(self, problems: list[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(path="config", value=None, expected=problems)]
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class Problems:
    """Collects the ConfigErrors of independent steps, so one run reports every problem."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def attempt(self, step: Callable[[], T]) -> T | None:
        """``step()``, or None after recording its ConfigError's problems."""
        try:
            return step()
        except ConfigError as exc:
            self.items.extend(exc.problems)
            return None

    def raise_any(self) -> None:
        if self.items:
            raise ConfigError(list(self.items))


class TemporaryError(CryptomonError):
    """A failure that may go away: retry with backoff."""


class FatalError(CryptomonError):
    """A failure that stops the component."""


class OperatorError(FatalError):
    """A failure only the operator can fix, its message naming the fix: a start refused by
    it exits 2 (restarting the daemon would only refuse again)."""


class RiskRejected(CryptomonError):
    """An order intent rejected by a risk check."""

    def __init__(self, reason: str, *, check: str = "") -> None:
        self.reason = reason
        self.check = check
        super().__init__(reason)


class RepeatedKey(ValueError):
    """A JSON object gives ``key`` twice (raised by :func:`unique_keys`)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``'s ``object_pairs_hook`` for objects whose keys are distinct: a key given
    twice raises :class:`RepeatedKey` instead of the last one replacing the first."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise RepeatedKey(key)
        out[key] = value
    return out


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its key/value pairs in order (repeats kept), for :func:`repeated_key`."""


def repeated_key(text: str | bytes) -> str | None:
    """The dotted path (``data.channel``, ``items.0.id``) of the first key that a JSON object
    in ``text`` gives twice, or None (also for text that is not JSON: the caller's parser
    says what is wrong with it). Call it on text whose nesting a parser has bounded."""
    try:
        doc = json.loads(text, object_pairs_hook=_Pairs)
    except (ValueError, RecursionError):
        return None
    todo: list[tuple[str, Any]] = [("", doc)]
    while todo:
        path, value = todo.pop()
        prefix = f"{path}." if path else ""
        if isinstance(value, _Pairs):
            seen: set[str] = set()
            for key, _item in value:
                if key in seen:
                    return f"{prefix}{key}"
                seen.add(key)
            todo.extend((f"{prefix}{k}", v) for k, v in reversed(value))
        elif isinstance(value, list):
            todo.extend((f"{prefix}{i}", v) for i, v in reversed(list(enumerate(value))))
    return None


def backoff_delays(
    *,
    initial: float = 0.5,
    cap: float = 30.0,
    factor: float = 2.0,
    jitter: float = 0.2,
    rng: random.Random | None = None,
) -> Iterator[float]:
    """Yield capped exponential delays with +/- ``jitter`` relative noise, forever."""
    rand = rng or random.Random()  # noqa: S311 - jitter, not cryptography
    delay = initial
    while True:
        spread = delay * jitter
        yield max(0.0, delay + rand.uniform(-spread, spread))
        delay = min(cap, delay * factor)
