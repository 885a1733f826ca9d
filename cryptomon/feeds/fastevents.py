"""Fast constructors for hot-path events.

The events are frozen slotted dataclasses; their generated ``__init__`` goes through
``object.__setattr__`` once per field. :func:`factory` builds, once per class, a positional
constructor that sets the slots on an instance of a *builder*: a subclass without slots of its
own whose ``__setattr__`` and ``__delattr__`` are ``object``'s, so each store is the
interpreter's plain slot store (a frozen dataclass's ``__setattr__`` raises; calling each slot
descriptor's ``__set__`` costs a C call with an argument tuple per field, ~3x more per event);
the instance's class is then set to the event class. The result is an ordinary instance of the
event class: equal to one built by the class, still frozen afterwards, its builder class never
seen outside the constructor. Where the class cannot be swapped in (not a heap class, a layout
Python refuses), the constructor sets the slots through their descriptors instead.

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
    make = _builder_factory(cls, names)
    if make is None:
        make = _descriptor_factory(cls, names)
    make.__qualname__ = f"fast_{cls.__name__}"
    return make


_BUILDERS: dict[type, type] = {}


def _builder(cls: type) -> type:
    """The builder class of ``cls`` (one per class): no slots of its own, plain attribute
    stores (both ``object.__setattr__`` and ``object.__delattr__``: with only one of them the
    class keeps the slow generic dispatch)."""
    builder = _BUILDERS.get(cls)
    if builder is None:
        ns = {"__slots__": (), "__setattr__": object.__setattr__}
        ns["__delattr__"] = object.__delattr__
        builder = _BUILDERS[cls] = type(f"_Building{cls.__name__}", (cls,), ns)
    return builder


def _builder_factory(cls: type[T], names: list[str]) -> Callable[..., T] | None:
    """The constructor that stores the fields on a builder instance and then makes it a
    ``cls``; None when Python refuses the class swap for ``cls``."""
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    try:
        ns["_builder"] = _builder(cls)
    except TypeError:  # a class that cannot be subclassed
        return None
    body = "".join(f"    ev.{name} = {name}\n" for name in names)
    src = (
        f"def make({', '.join(names)}):\n    ev = _new(_builder)\n{body}"
        "    ev.__class__ = _cls\n    return ev\n"
    )
    exec(src, ns)  # noqa: S102 - generated from dataclass field names, like dataclasses does
    make: Callable[..., T] = ns["make"]
    try:  # the swap is checked once here, not on every event
        probe = make(*([None] * len(names)))
    except TypeError:
        return None
    return make if type(probe) is cls else None


def _descriptor_factory(cls: type[T], names: list[str]) -> Callable[..., T]:
    """The constructor that sets each slot through its descriptor's ``__set__``."""
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    body = []
    for index, name in enumerate(names):
        ns[f"_set{index}"] = getattr(cls, name).__set__
        body.append(f"    _set{index}(ev, {name})\n")
    src = f"def make({', '.join(names)}):\n    ev = _new(_cls)\n{''.join(body)}    return ev\n"
    exec(src, ns)  # noqa: S102 - generated from dataclass field names, like dataclasses does
    make: Callable[..., T] = ns["make"]
    return make


def _inherited_slots(cls: type) -> set[str]:
    out: set[str] = set()
    for base in cls.__mro__[1:]:
        out.update(getattr(base, "__slots__", ()))
    return out
