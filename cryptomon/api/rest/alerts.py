"""Alerts: channels (URLs redacted), routing updates, history, test notifications."""

from __future__ import annotations

from typing import Any

from cryptomon.api import models_trading as mt
from cryptomon.api.errors import ApiError
from cryptomon.api.rest.paging import check_limit, invalid_query
from cryptomon.api.rest.trading import audit
from cryptomon.api.routing import Call, RouteTable
from cryptomon.api.services import NOTIFIER, QUERIES
from cryptomon.errors import ConfigError

table = RouteTable("alerts")


def _known_channel(call: Call, name: str) -> None:
    names = [str(c["name"]) for c in call.service(NOTIFIER).channels_redacted()]
    if name not in names:
        raise ApiError(
            404, f"no alert channel {name!r}", details={"channel": name, "channels": names}
        )


def _channels(call: Call) -> mt.AlertsConfigOut:
    channels = call.service(NOTIFIER).channels_redacted()
    return mt.AlertsConfigOut(channels=[mt.ChannelOut.model_validate(dict(c)) for c in channels])


@table.get("/api/v1/alerts/config", scope="read", response=mt.AlertsConfigOut, needs=(NOTIFIER,))
async def get_alerts_config(call: Call) -> mt.AlertsConfigOut:
    """Alert channels with their URLs redacted."""
    return _channels(call)


@table.post(
    "/api/v1/alerts/config",
    scope="admin",
    body=mt.AlertRoutingUpdate,
    response=mt.AlertsConfigOut,
    needs=(NOTIFIER,),
    description="Routing and thresholds only; a 'url' or 'name' field is rejected (422).",
)
async def update_alerts_config(call: Call) -> mt.AlertsConfigOut:
    """Change one channel's routing and thresholds (audited)."""
    b: mt.AlertRoutingUpdate = call.body
    _known_channel(call, b.channel)
    changes = b.changes()
    try:
        call.service(NOTIFIER).update_routing(b.channel, **changes)
    except ConfigError as exc:
        fields: list[dict[str, Any]] = [
            {"field": _body_field(p.path, b.channel), "message": p.expected} for p in exc.problems
        ]
        names = ", ".join(f["field"] for f in fields)
        raise ApiError(422, f"invalid body: {names}", details={"fields": fields}) from None
    audit(call, "alerts.config.update", {"channel": b.channel, **changes})
    return _channels(call)


def _body_field(path: str, channel: str) -> str:
    """``alerts.channels.<channel>.kinds.1`` (the notifier's path) as ``body.kinds.1``: the
    whole part after the channel, so a list item keeps its field's name."""
    prefix = f"alerts.channels.{channel}."
    return "body." + (path[len(prefix) :] if path.startswith(prefix) else path.rsplit(".", 1)[-1])


_HISTORY_FIELDS = ("cursor", "since", "until", "event_type")


@table.get(
    "/api/v1/alerts/history",
    scope="read",
    response=mt.NotificationsOut,
    query=mt.AlertHistoryQuery,
    needs=(QUERIES,),
    description="Newest first. Keyset pagination: pass next_cursor back as cursor.",
)
async def alerts_history(call: Call) -> mt.NotificationsOut:
    """Sent, failed, suppressed and digested notifications, newest first, filtered and
    paginated."""
    q: mt.AlertHistoryQuery = call.query
    check_limit(call, q.limit)
    try:
        rows, next_cursor = await call.service(QUERIES).notification_page(
            channel=q.channel,
            status=q.status,
            event_type=q.event_type,
            exchange=q.exchange,
            symbol=q.symbol,
            since=q.since,
            until=q.until,
            limit=q.limit,
            cursor=q.cursor,
        )
    except ValueError as exc:  # the store names the argument (e.g. a malformed cursor)
        raise invalid_query(exc, _HISTORY_FIELDS) from None
    return mt.NotificationsOut(
        items=[mt.NotificationOut.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@table.post(
    "/api/v1/alerts/test",
    scope="admin",
    body=mt.AlertTest,
    response=mt.AlertTestOut,
    needs=(NOTIFIER,),
)
async def alerts_test(call: Call) -> mt.AlertTestOut:
    """Send one test notification to a channel and report the outcome (audited)."""
    b: mt.AlertTest = call.body
    _known_channel(call, b.channel)
    results = await call.service(NOTIFIER).send_test(b.channel)
    audit(call, "alerts.test", {"channel": b.channel})
    result = dict(results.get(b.channel, {"ok": False, "error": "no result"}))
    return mt.AlertTestOut(
        channel=b.channel,
        ok=bool(result.get("ok")),
        attempts=int(result.get("attempts") or 0),
        error=str(result.get("error") or ""),
    )
