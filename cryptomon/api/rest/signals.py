"""Signals: stored history with filters and keyset pagination, statistics, and the webhook
through which external senders (TradingView alerts, scripts) send signals."""

from __future__ import annotations

from cryptomon.api import models_signals as ms
from cryptomon.api.auth import INVALID_TOKEN
from cryptomon.api.errors import ApiError
from cryptomon.api.rest.paging import check_limit, invalid_query
from cryptomon.api.routing import Call, RouteTable, client_address
from cryptomon.api.services import QUERIES, WEBHOOKS
from cryptomon.trading.signals.webhooks import TIMESTAMP_HEADER, WebhookCall, WebhookRejected

table = RouteTable("signals")

WEBHOOK_DESCRIPTION = (
    "For each webhook of trading.webhooks. No bearer token: the webhook's secret comes in the "
    "body ('secret'), as ?token=, or as an X-Signature header: hex HMAC-SHA256 with the secret "
    "of '<X-Signature-Timestamp>.<raw body>', where the X-Signature-Timestamp header (required "
    "with X-Signature) is the Unix time in seconds; a timestamp outside the webhook's "
    "signature_window_s (300 s) is 401 and a signature accepted before is 409 (no replays). "
    "A wrong secret is 401 and counts toward the failed-auth throttle (past it: 429). The "
    "body may be sent as text/plain (TradingView's alert message). The signal goes through "
    "the same gates, risk checks and order engine as any other; a repeated alert_id answers "
    "'duplicate' without a second signal; calls beyond the webhook's max_per_minute get 429. "
    "A signal for an exchange or market the daemon's feeds (a brain: its collectors) do not "
    "watch is 422; a brain none of whose collectors has reported yet answers 503 "
    "markets_unknown."
)


_QUERY_FIELDS = ("cursor", "since", "until", "grade")


@table.get(
    "/api/v1/signals",
    scope="read",
    response=ms.SignalPage,
    query=ms.SignalQuery,
    needs=(QUERIES,),
    description="Newest first. Keyset pagination: pass next_cursor back as cursor.",
)
async def list_signals(call: Call) -> ms.SignalPage:
    """Stored signals with their grades, newest first, filtered and paginated."""
    q: ms.SignalQuery = call.query
    check_limit(call, q.limit)
    try:
        rows, next_cursor = await call.service(QUERIES).signal_page(
            exchange=q.exchange,
            symbol=q.symbol,
            source=q.source,
            side=q.side,
            grade=q.grade,
            since=q.since,
            until=q.until,
            limit=q.limit,
            cursor=q.cursor,
        )
    except ValueError as exc:
        raise invalid_query(exc, _QUERY_FIELDS) from None
    return ms.SignalPage(
        items=[ms.SignalOut.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@table.get(
    "/api/v1/signals/stats",
    scope="read",
    response=ms.SignalStatsOut,
    query=ms.SignalStatsQuery,
    needs=(QUERIES,),
    description="Counts by source and grade, the share that became orders, and for those "
    "the realized PnL (fees included) and win rate by source.",
)
async def signal_stats(call: Call) -> ms.SignalStatsOut:
    """Signal counts by source and grade; PnL and win rate of the traded ones."""
    q: ms.SignalStatsQuery = call.query
    try:
        stats = await call.service(QUERIES).signal_stats(
            exchange=q.exchange, symbol=q.symbol, since=q.since, until=q.until
        )
    except ValueError as exc:
        raise invalid_query(exc, _QUERY_FIELDS) from None
    return ms.SignalStatsOut.model_validate(dict(stats))


@table.post(
    "/api/v1/signals/webhook/{name}",
    scope=None,
    body=ms.WebhookSignal,
    response=ms.WebhookOut,
    needs=(WEBHOOKS,),
    errors=(401, 409),
    content_types=frozenset({"application/json", "text/plain"}),
    description=WEBHOOK_DESCRIPTION,
)
async def signal_webhook(call: Call) -> ms.WebhookOut:
    """Accept a signal from a configured webhook sender (TradingView alert)."""
    request = call.request
    name = request.match_info["name"]
    client = client_address(request)
    auth = call.ctx.auth
    body: ms.WebhookSignal = call.body
    hooks = call.service(WEBHOOKS)
    try:
        ok = hooks.verify(
            name,
            secret=body.secret if body.secret is not None else request.query.get("token"),
            signature=request.headers.get("X-Signature"),
            raw_body=await request.read(),
            timestamp=request.headers.get(TIMESTAMP_HEADER),
        )
    except WebhookRejected as exc:  # correctly signed, but unstamped, stale or replayed
        raise _rejected(exc) from None
    if not ok:  # like a bearer token: a valid secret is never refused by the throttle
        auth.check_throttle(client)
        auth.failed(client)
        raise ApiError(
            401,
            f"invalid secret for webhook {name!r} (expected the webhook's secret as the body's "
            f"'secret', as ?token=, or an X-Signature HMAC-SHA256 of "
            f"'<{TIMESTAMP_HEADER}>.<body>')",
            actor=INVALID_TOKEN,  # audited (never the secret), bounded by the throttle
        )
    fields = body.model_dump(exclude={"secret"})
    try:
        result = hooks.accept(name, WebhookCall(**fields))
    except WebhookRejected as exc:  # not accepted: the same signed call may come again
        hooks.forget_signature(name, request.headers.get("X-Signature"))
        raise _rejected(exc) from None
    return ms.WebhookOut.model_validate(dict(result))


def _rejected(exc: WebhookRejected) -> ApiError:
    if exc.status == 429 or exc.retry_after_s > 0:
        retry = max(1, int(exc.retry_after_s + 0.999))
        return ApiError(
            exc.status,
            exc.message,
            code=exc.code,
            details={"retry_after_s": retry},
            headers={"Retry-After": str(retry)},
        )
    details = {"fields": [{"field": exc.field, "message": exc.message}]} if exc.field else None
    return ApiError(exc.status, exc.message, details=details, code=exc.code)
