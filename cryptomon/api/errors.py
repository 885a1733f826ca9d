"""The one error shape of the API: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web
from pydantic import ValidationError

_NAMED = re.compile(r"^([a-z_][a-z0-9_]*): (.+)$", re.DOTALL)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    421: "misdirected_request",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """Raised by handlers and middleware; rendered as the error JSON with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
        actor: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, "error")
        self.message = message
        self.details = details
        self.headers = headers or {}
        self.actor = actor  # who was refused (a token's name), for the audit


def not_found(message: str, **details: Any) -> ApiError:
    return ApiError(404, message, details=details or None)


def error_response(err: ApiError, request_id: str | None = None) -> web.Response:
    body: dict[str, Any] = {"code": err.code, "message": err.message, "details": err.details}
    if request_id:
        body["request_id"] = request_id
    headers = dict(err.headers)
    if err.status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="cryptomon"')
    return web.Response(
        status=err.status,
        text=json.dumps({"error": body}, default=str),
        content_type="application/json",
        headers=headers,
    )


_SHOWN_CHARS = 100
"""A refused text value longer than this is answered by its start and its length."""


def validation_error(exc: ValidationError, where: str) -> ApiError:
    """422 naming every offending field (``query.limit``, ``body.amount``...)."""
    fields = []
    from cryptomon.api.models import PATTERN_WORDS

    for e in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in e.get("loc", ()))
        value = e.get("input")
        message = str(e["msg"]).removeprefix("Value error, ")
        words = PATTERN_WORDS.get(str((e.get("ctx") or {}).get("pattern")))
        if e["type"] == "string_pattern_mismatch" and words is not None:
            message = f"expected {words}"
        # a rule across fields (a model validator) has no location of its own: its message
        # starts with the field to change ("price: required for a limit order")
        named = _NAMED.match(message) if not loc else None
        if named is not None:
            loc, message = named.group(1), named.group(2)
            value = value.get(loc) if isinstance(value, dict) else None
        if isinstance(value, dict | list):
            value = None
        elif isinstance(value, str) and len(value) > _SHOWN_CHARS:  # sent back whole before
            value = f"{value[:_SHOWN_CHARS]}... ({len(value)} characters)"
        fields.append(
            {
                "field": f"{where}.{loc}" if loc else where,
                "message": message,
                "value": value,
            }
        )
    names = ", ".join(str(f["field"]) for f in fields)
    return ApiError(422, f"invalid {where}: {names}", details={"fields": fields})
