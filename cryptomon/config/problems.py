"""Validation errors as :class:`~cryptomon.errors.Problem` lines (key path, value, expected),
with every secret redacted by the schema: a value that is, or contains, a secret field (a token
inside a short object, an alert URL given as a bare string, a secret from the environment) is
never echoed, and no secret string appears in any part of a message."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from cryptomon.config.base import (
    Section,
    is_secret,
    model_in,
    redact_url_password,
    url_passwords,
)
from cryptomon.errors import Problem

REDACTED = "***"
# words of a key name (split at every non-alphanumeric) that make an unknown key's value a
# possible secret (a URL value is one whatever its key's name: an alert URL carries its token)
_SECRET_WORDS = frozenset(
    (
        *("token", "tokens", "secret", "secrets", "password", "passwords", "passwd", "pwd"),
        *("passphrase", "key", "keys", "apikey", "credential", "credentials"),
    )
)
_SECRET_WORD_RE = re.compile(r"(?:api|access|private|secret|auth)(?:key|token|secret)s?")
# keys people put in the wrong section: (model, key without _file) -> where they go. The
# exchanges[] entries are market-data feeds; the venue account is trading.live's.
_ELSEWHERE = {
    ("ExchangeConfig", key): "venue credentials go under trading.live (trading.live.{key})"
    for key in ("api_key", "secret", "password")
}


def problems_from(exc: ValidationError, *, secrets: Iterable[str] = ()) -> list[Problem]:
    """One Problem per pydantic error: dotted key path, offending value, what was expected.
    ``secrets`` are strings (from the raw input) that must not appear anywhere in the output."""
    root = _model_named(exc.title)
    hidden = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
    out: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err.get("loc", ()))
        path = ".".join(str(p) for p in loc) or "config"
        kind = err.get("type", "")
        value = err.get("input")
        msg = str(err.get("msg", ""))
        if kind == "extra_forbidden":
            parent = model_in(annotation_at(root, loc[:-1])) if root is not None else None
            allowed = sorted(parent.model_fields) if parent is not None else []
            expected = "no such key" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
            key = str(loc[-1]) if loc else ""
            hint = _ELSEWHERE.get((parent.__name__ if parent else "", key.removesuffix("_file")))
            if hint is not None:
                expected = f"no such key here: {hint.format(key=key)}; allowed here: " + (
                    ", ".join(allowed)
                )
            if _near_secret(str(loc[-1]) if loc else "", parent, value):
                value = REDACTED
        elif kind == "missing":
            expected = "a value (this key is required)"
            value = None
        else:
            expected = _expected(msg)
        if kind != "missing" and root is not None:
            value = redact(annotation_at(root, loc), value)
        if isinstance(value, str) and "://" in value:
            value = redact_url_password(value)
        out.append(_scrubbed(Problem(path, _shortened(value), expected), hidden))
    return out


def redact(annotation: Any, value: Any) -> Any:
    """``value`` with every part the schema (``annotation``) marks secret replaced by ``***``;
    a non-mapping given where a model with secrets is expected is hidden whole."""
    if value is None or annotation is None:
        return value
    if is_secret(annotation):
        return REDACTED
    inner = _unwrap_optional(annotation)
    origin = get_origin(inner)
    if origin in (list, tuple, set, frozenset) and isinstance(value, list | tuple):
        item = (get_args(inner) or (None,))[0]
        return [redact(item, v) for v in value]
    if origin is dict and isinstance(value, dict):
        item = get_args(inner)[1] if len(get_args(inner)) == 2 else None
        return {k: redact(item, v) for k, v in value.items()}
    model = model_in(inner)  # a model, or a container of models given the wrong shape
    if model is None:
        return value
    if not isinstance(value, dict):
        return REDACTED if has_secrets(model) else value
    fields = model.model_fields
    return {
        k: redact(fields[k].annotation, v)
        if k in fields
        else (REDACTED if _near_secret(str(k), model, v) else v)
        for k, v in value.items()
    }


def secrets_in(annotation: Any, value: Any) -> list[str]:
    """The secret strings of raw input ``value`` read by the schema ``annotation``."""
    found: list[str] = []

    def walk(ann: Any, val: Any) -> None:
        if isinstance(val, str):
            if "://" in val:
                found.extend(url_passwords(val))
            model = model_in(ann)
            if is_secret(ann) or (model is not None and has_secrets(model)):
                found.append(val)
            return
        if isinstance(val, list | tuple):
            item = (get_args(_unwrap_optional(ann)) or (None,))[0]
            for v in val:
                walk(item, v)
        elif isinstance(val, dict):
            model = model_in(ann)
            if model is None:
                return
            for k, v in val.items():
                field = model.model_fields.get(str(k))
                if field is not None:
                    walk(field.annotation, v)
                elif isinstance(v, str) and _near_secret(str(k), model, v):
                    found.append(v)

    walk(annotation, value)
    return found


def has_secrets(model: type[BaseModel], _seen: frozenset[type] = frozenset()) -> bool:
    """True when ``model`` or a model nested in it has a secret field."""
    for field in model.model_fields.values():
        if is_secret(field.annotation):
            return True
        nested = model_in(field.annotation)
        if nested is not None and nested not in _seen and has_secrets(nested, _seen | {model}):
            return True
    return False


def annotation_at(root: type[BaseModel], loc: tuple[Any, ...]) -> Any:
    """The annotation of the key at ``loc`` (pydantic's error location) below ``root``."""
    ann: Any = root
    for part in loc:
        inner = _unwrap_optional(ann)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            field = inner.model_fields.get(str(part))
            if field is None:
                return None
            ann = field.annotation
        elif get_origin(inner) in (list, tuple, set, frozenset) and isinstance(part, int):
            ann = (get_args(inner) or (None,))[0]
        elif get_origin(inner) is dict:
            ann = get_args(inner)[1] if part != "[key]" else None
        # else: a union tag or similar; stay on the same annotation
    return ann


def _near_secret(key: str, model: type[BaseModel] | None, value: Any) -> bool:
    """True when the value of ``key``, a key ``model`` does not have, may be a secret: the
    key is named like one (a secret word in it: ``api_key``, ``token``, ...), the value is or
    holds a URL (whatever the key's name: a misspelt ``webhok`` with a Slack hook's path, a
    list of alert URLs) or the key is a near miss of a field the schema marks secret (``tokn`` for a
    ``token``). A key merely containing such letters (``monkey``) or close to a field that
    is no secret (``urls`` for an exchange's ``url``) shows its value."""
    name = key.lower()
    if name.endswith("_file"):  # a path to a secret file, not the secret
        return False
    words = set(re.split(r"[^a-z0-9]+", name))
    if words & _SECRET_WORDS or any(_SECRET_WORD_RE.fullmatch(w) for w in words):
        return True
    if _holds_url(value):  # a webhook path, a bot token, user:password@: never shown
        return True
    if model is None:
        return False
    close = difflib.get_close_matches(name, list(model.model_fields), n=1, cutoff=0.75)
    return bool(close) and _secret_field(model.model_fields[close[0]].annotation)


def _holds_url(value: Any) -> bool:
    """Whether ``value`` is, or holds in a list or mapping, a string with ``://``."""
    if isinstance(value, str):
        return "://" in value
    if isinstance(value, dict):
        return any(_holds_url(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_url(v) for v in value)
    return False


def _secret_field(annotation: Any) -> bool:
    """A secret field: ``SecretStr``, or a model (list, ...) holding one."""
    if is_secret(annotation):
        return True
    model = model_in(annotation)
    return model is not None and has_secrets(model)


def _unwrap_optional(annotation: Any) -> Any:
    args = [a for a in get_args(annotation) if a is not type(None)]
    if len(args) == 1 and type(None) in get_args(annotation):
        return args[0]
    return annotation


def _shortened(value: Any) -> Any:
    if isinstance(value, dict | list) and len(repr(value)) > 80:
        return f"<{type(value).__name__}>"
    return value


def _scrubbed(problem: Problem, hidden: list[str]) -> Problem:
    if not hidden:
        return problem
    value, expected = problem.value, problem.expected
    if any(s in repr(value) for s in hidden):
        value = REDACTED
    for s in hidden:
        expected = expected.replace(s, REDACTED)
    return Problem(problem.path, value, expected)


def _expected(msg: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    for prefix in ("Input should be ", "String should "):
        if msg.startswith(prefix):
            rest = msg[len(prefix) :]
            return rest if prefix == "Input should be " else "a string that should " + rest
    return msg[:1].lower() + msg[1:]


def _model_named(title: str) -> type[BaseModel] | None:
    """The config model a ValidationError is about (pydantic puts its name in ``title``)."""
    todo: list[type[BaseModel]] = [Section]
    while todo:
        cls = todo.pop()
        if cls.__name__ == title:
            return cls
        todo.extend(cls.__subclasses__())
    return None
