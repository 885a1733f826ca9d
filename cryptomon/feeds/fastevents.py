"""Fast constructors for hot-path events.

The events are frozen slotted dataclasses; their generated ``__init__`` goes through
``object.__setattr__`` once per field, which costs ~2.5x more than setting the slots through
their descriptors. :func:`factory` builds, once per class, a positional constructor that does the
latter (the same technique ``dataclasses`` uses to generate ``__init__``). The result is an
ordinary instance: equal to one built by the class, still frozen afterwards.

Positional arguments silently go to the wrong field if ``events.py`` gains or reorders a field,
so each call site states the order it passes (``fields``) and :func:`factory` refuses, at
import time, an order that is not the dataclass's.

Falls back to the class itself (keyword arguments) when the class has ``__post_init__`` or a
field that is not a slot, so a future validation hook in ``events.py`` is never skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def factory(cls: type[T], order: tuple[str, ...]) -> Callable[..., T]:
    """A constructor taking the fields of ``cls`` positionally, in declaration order, which
    must be ``order`` (the order the caller passes them in): else TypeError naming both."""
    names = [field.name for field in fields(cls)]  # type: ignore[arg-type]
    if tuple(names) != tuple(order):
        raise TypeError(
            f"positional factory for {cls.__name__}: the caller passes {', '.join(order)} "
            f"but the dataclass fields are {', '.join(names)}; update the call site"
        )
    slots = set(getattr(cls, "__slots__", ()))
    if hasattr(cls, "__post_init__") or not set(names) <= slots | _inherited_slots(cls):
        return lambda *args: cls(**dict(zip(names, args, strict=True)))
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    body = []
    for index, name in enumerate(names):
        ns[f"_set{index}"] = getattr(cls, name).__set__
        body.append(f"    _set{index}(ev, {name})\n")
    src = f"def make({', '.join(names)}):\n    ev = _new(_cls)\n{''.join(body)}    return ev\n"
    exec(src, ns)  # noqa: S102 - generated from dataclass field names, like dataclasses does
    make: Callable[..., T] = ns["make"]
    make.__qualname__ = f"fast_{cls.__name__}"
    return make


def _inherited_slots(cls: type) -> set[str]:
    out: set[str] = set()
    for base in cls.__mro__[1:]:
        out.update(getattr(base, "__slots__", ()))
    return out
