"""What every config section shares: the frozen ``Section`` base, symbol normalization and the
schema questions the loader asks (is this field a secret? which model sits at this key?)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

SeverityName = Literal["low", "medium", "high", "critical"]

_SYMBOL_RE = re.compile(r"^[A-Z0-9]+([-/][A-Z0-9]+)+$")
# the userinfo of ``scheme://user:password@host``, by its shape: any password length (one
# letter too), an empty user name (``://:password@``) and a ``/`` in the password alike; a
# ``://`` ends it, so ``nats://h1:4222,tls://u:pw@h2`` is the second URL's password only
_URL_PASSWORD_RE = re.compile(
    r"^([a-z][a-z0-9+.-]*://[^\s:/@]*:)((?:(?!://)[^\s@])+)(@)", re.IGNORECASE
)


def url_password(url: str) -> str | None:
    """The password of a ``scheme://user:password@host`` URL, if it has one (the first one
    of a comma-separated list)."""
    found = url_passwords(url)
    return found[0] if found else None


def url_passwords(url: str) -> list[str]:
    """The passwords of a URL or of a comma-separated list of them (a NATS cluster:
    ``nats://a:pw1@h1,tls://b:pw2@h2``)."""
    out = []
    for part in url.split(","):
        m = _URL_PASSWORD_RE.match(part.strip())
        if m:
            out.append(m.group(2))
    return out


def redact_url_password(url: str) -> str:
    """``scheme://user:password@host`` -> ``scheme://user:***@host``, each URL of a
    comma-separated list alike."""
    return ",".join(
        part[: len(part) - len(part.lstrip())]
        + _URL_PASSWORD_RE.sub(lambda m: f"{m.group(1)}***{m.group(3)}", part.lstrip())
        for part in url.split(",")
    )


PROXY_SCHEMES = ("http", "https", "socks4", "socks5", "socks5h")


def check_proxy(value: SecretStr | None) -> SecretStr | None:
    """A proxy URL (``http://``, ``https://`` or ``socks4/5/5h://``, host required)."""
    if value is None:
        return None
    url = value.get_secret_value()
    scheme, sep, rest = url.partition("://")
    host = rest.split("@")[-1].split("/")[0]
    if not sep or scheme.lower() not in PROXY_SCHEMES or not host:
        schemes = ", ".join(f"{s}://" for s in PROXY_SCHEMES)
        raise ValueError(f"a proxy URL such as http://host:3128 ({schemes})")
    return value


HTTP_URL_EXPECTED = "an http(s) URL such as http://127.0.0.1:8901"


def check_http_url(value: str | None) -> str | None:
    """A REST origin (``http://`` or ``https://``, a host, a port within 1..65535 if given);
    a URL without a scheme was accepted and then retried "No scheme supplied" for ever."""
    if value is None:
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value.strip())
        port = parts.port  # ValueError when out of range or not a number
    except ValueError:
        raise ValueError(HTTP_URL_EXPECTED) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or port == 0:
        raise ValueError(HTTP_URL_EXPECTED)
    return value.strip()


def normalize_symbol(value: str) -> str:
    """``btc/usdt`` -> ``BTC-USDT`` (cryptofeed's normalized form)."""
    s = value.strip().upper()
    if not _SYMBOL_RE.match(s):
        raise ValueError(f"a symbol like BTC/USDT or BTC-USDT, not {value!r}")
    return s.replace("/", "-")


def split_symbol(symbol: str) -> tuple[str, str]:
    """``BTC-USDT`` -> (``BTC``, ``USDT``); a derivative's normalized symbol keeps its quote
    (``BTC-USDT-PERP`` -> ``USDT``, ``BTC-USD-22K27`` -> ``USD``), never ``PERP``."""
    parts = symbol.split("-")
    if len(parts) < 2:
        return symbol, ""
    return parts[0], parts[1]


def is_secret(annotation: Any) -> bool:
    """True when a field annotation is (or contains) ``SecretStr``."""
    if annotation is SecretStr:
        return True
    return any(is_secret(a) for a in get_args(annotation))


def model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (``list[X]``, ``X | None``, ``dict[K, X]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = model_in(arg)
        if found is not None:
            return found
    return None


def is_complex(annotation: Any) -> bool:
    """True when a value for this annotation is written as JSON in an environment variable."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    if get_origin(annotation) in (list, dict, tuple, set, frozenset):
        return True
    return any(is_complex(a) for a in get_args(annotation) if a is not type(None))


def check_finite(value: Any, where: str) -> None:
    """Raise ValueError when a number nested anywhere in ``value`` is infinite or NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: a finite number, not {value!r}")
    if isinstance(value, dict):
        for key, item in value.items():
            check_finite(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_finite(item, f"{where}.{i}")


MAX_SECRET_FILE_BYTES = 65536  # a key, a token, a URL with one: far below this


class Section(BaseModel):
    """Base of every config section: frozen, unknown keys are errors, numbers are finite, and
    any secret field ``X`` may be given as ``X_file: PATH`` (its stripped content)."""

    model_config = ConfigDict(
        extra="forbid", validate_default=True, frozen=True, allow_inf_nan=False
    )

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for key in list(out):
            if not (isinstance(key, str) and key.endswith("_file")):
                continue
            base = key[: -len("_file")]
            field = cls.model_fields.get(base)
            if field is None or not is_secret(field.annotation):
                continue
            if out.get(base) is not None:  # which one would win is a guess: refuse both
                raise ValueError(f"{base} or {key}, not both")
            path = Path(str(out.pop(key))).expanduser()
            try:
                with path.open("rb") as f:  # bounded: /dev/zero or a log was read whole
                    raw = f.read(MAX_SECRET_FILE_BYTES + 1)
                if len(raw) > MAX_SECRET_FILE_BYTES:
                    raise ValueError(
                        f"{key}: secret file {str(path)!r} holds more than "
                        f"{MAX_SECRET_FILE_BYTES} bytes; expected a file holding only the secret"
                    )
                out[base] = raw.decode("utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or "not UTF-8 text"
                raise ValueError(
                    f"{key}: cannot read secret file {str(path)!r} ({reason})"
                ) from None
        return out
