"""What the keyset-paginated list routes share: the page-size cap and turning the store's
``ValueError`` (a malformed cursor, a bad bound) into a 422 that names the query field."""

from __future__ import annotations

from collections.abc import Iterable

from cryptomon.api.errors import ApiError
from cryptomon.api.routing import Call


def check_limit(call: Call, limit: int) -> None:
    """422 when ``limit`` exceeds ``api.max_page_size``."""
    cap = call.ctx.config.max_page_size
    if limit > cap:
        raise ApiError(
            422,
            f"invalid query: query.limit (at most api.max_page_size = {cap})",
            details={"fields": [{"field": "query.limit", "message": f"<= {cap}", "value": limit}]},
        )


def invalid_query(exc: ValueError, fields: Iterable[str]) -> ApiError:
    """The 422 for a store error, naming the first of ``fields`` its message mentions."""
    text = str(exc)
    name = next((n for n in fields if n in text), "")
    field = f"query.{name}" if name else "query"
    return ApiError(
        422,
        f"invalid query: {field} ({text})",
        details={"fields": [{"field": field, "message": text}]},
    )
