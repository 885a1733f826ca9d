"""Loading: the YAML file, ``CRYPTOMON_*`` environment overrides, and one
:class:`~cryptomon.errors.ConfigError` listing every problem (never a traceback).

Sources, lowest priority first: built-in defaults, the YAML file given by ``--config`` (and/or
a ``data`` mapping), environment variables ``CRYPTOMON_<SECTION>__<KEY>`` (``__`` separates
nesting levels; lists, mappings and whole sections take JSON). An unknown section in a variable
name is an error like an unknown key in the file; other unknown ``CRYPTOMON_*`` names get one
warning line; ``CRYPTOMON_TEST_*`` and ``CRYPTOMON_CI_*`` belong to tooling and are ignored.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from cryptomon.config.base import is_complex, is_secret, model_in
from cryptomon.config.bus import ack_wait_problem
from cryptomon.config.problems import REDACTED, has_secrets, problems_from, secrets_in
from cryptomon.config.settings import Settings
from cryptomon.config.trading import OFFLINE
from cryptomon.errors import ConfigError, Found, Problem, RepeatedKey, unique_keys

ENV_PREFIX = "CRYPTOMON_"
RESERVED_ENV_PREFIXES = ("CRYPTOMON_TEST_", "CRYPTOMON_CI_")


class _DuplicateKey(yaml.MarkedYAMLError):
    """A key given twice in one mapping (PyYAML keeps the last one silently)."""

    def __init__(self, key: Any, first_line: int, mark: yaml.Mark) -> None:
        super().__init__(problem_mark=mark)
        self.key = key
        self.first_line = first_line


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key repeated within one mapping: a second ``api:``
    section (or ``port:`` twice) replaced the first without a word. Merge keys (``<<``) and
    keys overriding merged ones stay allowed."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in seen:
                    raise _DuplicateKey(key, seen[key], key_node.start_mark)
                seen[key] = key_node.start_mark.line
            except TypeError:  # unhashable: the base class names it
                break
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse the YAML config file; every failure is a ConfigError naming the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [Problem(str(p), Found("no such file"), "an existing YAML config file")]
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            [Problem(str(p), Found("a directory"), "a readable YAML config file")]
        ) from None
    except OSError as exc:
        found = Found((exc.strerror or type(exc).__name__).lower())
        raise ConfigError([Problem(str(p), found, "a readable YAML config file")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [
                Problem(
                    str(p),
                    f"byte {exc.object[exc.start]:#04x} at offset {exc.start}",
                    "a UTF-8 text file",
                )
            ]
        ) from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader
    except _DuplicateKey as exc:
        mark = exc.problem_mark
        assert mark is not None
        where = f"{p}:{mark.line + 1}:{mark.column + 1}"
        expected = (
            f"each key once per mapping (first at line {exc.first_line + 1}; "
            "the second would replace it)"
        )
        raise ConfigError([Problem(where, exc.key, expected)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark else str(p)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            [Problem(where, Found("invalid YAML"), f"valid YAML ({problem})")]
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([Problem(str(p), data, "a YAML mapping of sections at the top level")])
    alias_problem = _alias_problem(data)
    if alias_problem is not None:
        raise ConfigError([Problem(str(p), Found(alias_problem), _ALIASES_EXPECTED)])
    return data


MAX_EXPANDED_VALUES = 1_000_000
_ALIASES_EXPECTED = (
    "YAML whose aliases (*name) refer to nodes outside themselves and expand to at most "
    f"{MAX_EXPANDED_VALUES} values"
)


def _alias_problem(data: dict[Any, Any]) -> str | None:
    """What is wrong with the aliases of parsed YAML, or None: an alias inside its own anchor
    (a list or mapping holding itself: every later walk recursed without end) or aliases of
    aliases expanding to more than :data:`MAX_EXPANDED_VALUES` values (every later walk ran
    for minutes). Each shared node is sized once, so this is linear in the document."""
    sizes: dict[int, int] = {}  # id -> expanded size, of the nodes done
    open_ids: set[int] = set()  # the nodes on the current path
    # (node, its key path, its children still to visit)
    stack: list[tuple[Any, str, list[tuple[str, Any]]]] = [(data, "", _children(data, ""))]
    open_ids.add(id(data))
    while stack:
        node, path, todo = stack[-1]
        if todo:
            child_path, child = todo.pop()
            if not isinstance(child, dict | list) or id(child) in sizes:
                continue
            if id(child) in open_ids:
                return f"a recursive alias at {child_path}"
            open_ids.add(id(child))
            stack.append((child, child_path, _children(child, child_path)))
            continue
        stack.pop()
        open_ids.discard(id(node))
        items = node.values() if isinstance(node, dict) else node
        size = 1 + sum(sizes.get(id(v), 1) for v in items)
        if size > MAX_EXPANDED_VALUES:
            return f"aliases expanding to more than {MAX_EXPANDED_VALUES} values at {path or '.'}"
        sizes[id(node)] = size
    return None


def _children(node: dict[Any, Any] | list[Any], path: str) -> list[tuple[str, Any]]:
    prefix = f"{path}." if path else ""
    pairs = node.items() if isinstance(node, dict) else enumerate(node)
    return [(f"{prefix}{k}", v) for k, v in reversed(list(pairs))]


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    data: dict[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    warn: Callable[[str], None] | None = None,
    offline: bool = False,
) -> Settings:
    """Build :class:`Settings` from a YAML file (and/or a dict) plus ``CRYPTOMON_*`` environment
    variables (which win). ``warn`` receives the line about unknown variables (default: stderr).
    ``offline``: for a command that never reaches the venue (``trades``, ``db``): a live
    trading section needs no keys.

    Raises :class:`ConfigError` with one :class:`Problem` per invalid key.
    """
    raw: dict[str, Any] = read_yaml(path) if path is not None else {}
    if data is not None:
        raw = {**raw, **data}
    env = os.environ if environ is None else environ
    overrides, problems, unknown = env_overrides(env)
    if unknown:
        (warn or _stderr)(
            "crypto-monitor: warning: unknown environment variable(s) ignored: "
            f"{', '.join(sorted(unknown))} (settings are {ENV_PREFIX}<SECTION>__<KEY>; "
            f"{ENV_PREFIX}TEST_* and {ENV_PREFIX}CI_* are reserved for tooling)"
        )
    merged = deep_merge(raw, overrides)
    try:
        settings = Settings.model_validate(merged, context={OFFLINE: True} if offline else None)
    except ValidationError as exc:
        found = problems_from(exc, secrets=secrets_in(Settings, merged))
        problems += [_named_by_variable(p, overrides, env) for p in found]
    else:
        expected = ack_wait_problem(settings.bus, settings.storage.batch_max_age_s)
        if expected is not None:
            problem = Problem("bus.ack_wait_s", settings.bus.ack_wait_s, expected)
            problems.append(_named_by_variable(problem, overrides, env))
    if problems:
        raise ConfigError(problems)
    return settings


def _named_by_variable(
    problem: Problem, overrides: dict[str, Any], environ: Mapping[str, str]
) -> Problem:
    """``problem`` with the ``CRYPTOMON_*`` variable that set its key named, when one did (its
    path is inside ``overrides``): the key path alone sent the reader to a config file that
    had it right."""
    node: Any = overrides
    for part in problem.path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return problem  # from the file (or a default)
    names = [
        (len(path), name)
        for name in environ
        if (path := _env_path(name)) is not None
        and (problem.path == path or problem.path.startswith(path + "."))
    ]
    if not names:
        return problem
    name = max(names)[1]
    return replace(problem, expected=f"{problem.expected} (from the environment: {name})")


def _env_path(name: str) -> str | None:
    """The dotted key path a ``CRYPTOMON_*`` variable sets (None: not a setting's name)."""
    upper = name.upper()
    if not upper.startswith(ENV_PREFIX) or upper.startswith(RESERVED_ENV_PREFIXES):
        return None
    return ".".join(upper[len(ENV_PREFIX) :].lower().split("__"))


def env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, Any], list[Problem], list[str]]:
    """``CRYPTOMON_*`` variables as a nested mapping, the problems found in them, and the names
    that are not settings (reserved tooling names left out)."""
    out: dict[str, Any] = {}
    problems: list[Problem] = []
    unknown: list[str] = []
    sections = ", ".join(sorted(Settings.model_fields))
    for name, text in environ.items():
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper.startswith(RESERVED_ENV_PREFIXES):
            continue
        keys = upper[len(ENV_PREFIX) :].lower().split("__")
        if keys[0] not in Settings.model_fields:
            if len(keys) > 1:
                problems.append(
                    Problem(name, keys[0], f"a known section (top-level keys: {sections})")
                )
            else:
                unknown.append(name)
            continue
        try:
            value = _env_value(name, keys, text)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        _set_path(out, keys, value)
    return out, problems, unknown


def _env_value(name: str, keys: list[str], text: str) -> Any:
    """The value of one variable: JSON where the key takes a list, mapping or section."""
    ann: Any = Settings
    for depth, key in enumerate(keys):
        model = _model(ann)
        if model is not None:
            field = model.model_fields.get(key)
            if field is None:  # an unknown key: validation reports it with the allowed ones
                return text
            ann = field.annotation
        elif get_origin(_strip_none(ann)) is dict:
            ann = get_args(_strip_none(ann))[1]
        else:
            where = ".".join(keys[:depth])
            raise ConfigError(
                [
                    Problem(
                        name,
                        ".".join(keys),
                        f"a key path through sections; give {where} whole, as JSON",
                    )
                ]
            )
    if not is_complex(ann):
        return text
    try:
        return json.loads(text, object_pairs_hook=unique_keys)
    except ValueError as exc:
        model = model_in(ann)
        secret = is_secret(ann) or (model is not None and has_secrets(model))
        shown = REDACTED if secret else text
        if isinstance(exc, RepeatedKey):
            expected = (
                f"JSON for {'.'.join(keys)} with each key once ({exc.key!r} is given twice; "
                "the second would replace the first)"
            )
        else:
            expected = f"JSON for {'.'.join(keys)} ({_json_example(ann)})"
        raise ConfigError([Problem(name, shown, expected)]) from None


def _json_example(ann: Any) -> str:
    origin = get_origin(_strip_none(ann))
    if origin in (list, tuple, set, frozenset):
        return 'a JSON list such as ["a", "b"]'
    return 'a JSON object such as {"key": "value"}'


def _model(ann: Any) -> type[BaseModel] | None:
    inner = _strip_none(ann)
    return inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None


def _strip_none(ann: Any) -> Any:
    args = [a for a in get_args(ann) if a is not type(None)]
    return args[0] if len(args) == 1 and type(None) in get_args(ann) else ann


def _set_path(out: dict[str, Any], keys: list[str], value: Any) -> None:
    node = out
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[keys[-1]] = value


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` laid on top: mappings merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
