"""OpenAPI 3.1 document generated from the routes and their pydantic models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from cryptomon.api.models import ErrorResponse
from cryptomon.api.routing import Route

_REF = "#/components/schemas/{model}"
_STATUS_TEXT = {
    200: "OK",
    400: "Malformed request (e.g. body is not JSON)",
    401: "Missing or invalid bearer token",
    403: "The token lacks the required scope",
    404: "Not found, or the capability is not available in this daemon",
    408: "Request body not received within api.body_timeout_s (connection closed)",
    409: "Conflict with the current state (e.g. risk rejection, order already closed)",
    413: "Request body larger than api.max_body_bytes",
    415: "Content-Type is not accepted, or the body has a Content-Encoding (send it uncompressed)",
    422: "Validation error; details.fields names each offending field",
    429: "Rate limited, api.max_inflight_per_ip requests already in progress, or too many "
    "failed authentications; see Retry-After",
    503: "Not ready, the store is unavailable, or no answer within api.request_timeout_s",
}
WS_DESCRIPTION = (
    "WebSocket at GET /ws (same bearer token, or ?token=; anonymous with api.public_read: "
    "market data and anomalies only). Client messages: "
    '{"msg_type": "Subscribe"|"Unsubscribe"|"Ping", "data": {"channel": '
    '"anomalies"|"trades"|"book"|"ticker"|"signals"|"orders"|"positions"|"feeds", "symbols": '
    "[...], "
    '"exchanges": [...]}}. Server pushes {"channel", "data"}.'
)


def _param_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Query parameters cannot be null: drop the null branch of optional fields."""
    out = {k: v for k, v in schema.items() if k != "title"}
    any_of = out.get("anyOf")
    if any_of:
        rest = [s for s in any_of if s.get("type") != "null"]
        if len(rest) == 1:
            out.pop("anyOf")
            out.update(rest[0])
        else:
            out["anyOf"] = rest
    if out.get("default") is None:
        out.pop("default", None)
    return out


def _parameters(route: Route) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
        for name in re.findall(r"{(\w+)}", route.path)
    ]
    if route.query is None:
        return params
    schema = route.query.model_json_schema()
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        p: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": _param_schema(prop),
        }
        if "description" in prop:
            p["description"] = prop["description"]
        params.append(p)
    return params


def _error_entries(err_ref: dict[str, str], statuses: tuple[int, ...]) -> dict[str, Any]:
    return {
        str(status): {
            "description": _STATUS_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": err_ref}},
        }
        for status in statuses
    }


def _plain_paths(err_ref: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The routes served outside the route table: dashboard, Prometheus, WebSocket."""
    text = {"schema": {"type": "string"}}
    return {
        "/": {
            "get": {
                "operationId": "dashboard",
                "summary": "The dashboard page (static HTML; it calls the API itself)",
                "tags": ["system"],
                "security": [],
                "responses": {
                    "200": {"description": "OK", "content": {"text/html": text}},
                    **_error_entries(err_ref, (429,)),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus exposition",
                "tags": ["system"],
                "security": [{"bearer": ["read"]}],
                "x-required-scope": "read",
                "responses": {
                    "200": {"description": "OK", "content": {"text/plain": text}},
                    **_error_entries(err_ref, (401, 403, 429)),
                },
            }
        },
        "/ws": {
            "get": {
                "operationId": "websocket",
                "summary": "WebSocket of live events (an upgrade request)",
                "description": WS_DESCRIPTION,
                "tags": ["system"],
                "security": [{"bearer": ["read"]}],
                "x-required-scope": "read",
                "responses": {
                    "101": {"description": "Switching Protocols (WebSocket)"},
                    **_error_entries(err_ref, (400, 401, 403, 429, 503)),
                },
            }
        },
    }


def _operation(
    r: Route, ok_ref: dict[str, Any], err_ref: dict[str, Any], body_ref: dict[str, Any] | None
) -> dict[str, Any]:
    """The OpenAPI operation of one route."""
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": {r.media_type: {"schema": ok_ref}}}
    }
    for status in r.statuses():
        # a 503 declared by the route itself (readiness) carries its normal body
        schema = ok_ref if status in r.errors and status == 503 else err_ref
        entry: dict[str, Any] = {
            "description": _STATUS_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": schema}},
        }
        if status == 429:
            entry["headers"] = {
                "Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}
            }
        responses[str(status)] = entry
    op: dict[str, Any] = {
        "operationId": r.operation_id,
        "summary": r.summary,
        "tags": [r.tag],
        "parameters": _parameters(r),
        "responses": responses,
    }
    if r.description:
        op["description"] = r.description
    if r.scope is not None:
        op["security"] = [{"bearer": [r.scope]}]
        op["x-required-scope"] = r.scope
        if r.public:  # anonymous with api.public_read
            op["security"].append({})
            op["x-public-read"] = True
    else:
        op["security"] = []
    if body_ref is not None:
        op["requestBody"] = {
            "required": True,
            "content": {ctype: {"schema": body_ref} for ctype in sorted(r.content_types)},
        }
    return op


def build_openapi(routes: list[Route], *, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``."""
    models: set[type[BaseModel]] = {ErrorResponse}
    for r in routes:
        if isinstance(r.response, type) and issubclass(r.response, BaseModel):
            models.add(r.response)
    bodies = {r.body for r in routes if r.body is not None}
    pairs = [(mdl, "serialization") for mdl in models] + [(b, "validation") for b in bodies]
    keys, defs = models_json_schema(
        sorted(pairs, key=lambda p: (p[0].__name__, p[1])),  # type: ignore[arg-type]
        ref_template=_REF,
    )
    schemas = defs.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    err_ref = keys[(ErrorResponse, "serialization")]
    for r in routes:
        # a route without a response model returns a document (e.g. text/html): a string
        ok_ref = {"type": "string"} if r.response is None else keys[(r.response, "serialization")]
        body_ref = keys[(r.body, "validation")] if r.body is not None else None
        paths.setdefault(r.path, {})[r.method.lower()] = _operation(r, ok_ref, err_ref, body_ref)
    paths.update(_plain_paths(err_ref))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cryptomon API",
            "version": version,
            "description": "Market data, anomalies, trading and alerts of a cryptomon daemon. "
            + WS_DESCRIPTION,
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
