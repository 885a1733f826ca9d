"""Webhook signals: external senders (TradingView alerts, scripts) turned into ``Signal``s.

Each configured webhook (``trading.webhooks``) has a secret, the symbols it may signal and a
rate. :meth:`SignalWebhooks.verify` checks a call's secret (the body's ``secret``, a
``?token=`` query parameter, or an ``X-Signature`` HMAC-SHA256 of the raw body) in constant
time. :meth:`SignalWebhooks.accept` then dedupes by the sender's alert id (the signal id is
derived from it, so a retry never makes a second order), rate-limits per webhook, publishes
the graded signal through the :class:`SignalGenerator` (the same gates, risk checks and order
engine as any signal) and audits the call without its secret.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict, deque
from dataclasses import dataclass

from cryptomon.clock import Clock
from cryptomon.config import WebhookConfig, normalize_symbol
from cryptomon.events import Side
from cryptomon.kinds import SignalGrade
from cryptomon.trading.runtime import publish_audit
from cryptomon.trading.signals.generator import SignalExtra, SignalGenerator
from cryptomon.trading.signals.grades import grade_for, strength_of

_MAX_ALERT_IDS = 10_000  # per webhook, LRU evicted


class WebhookRejected(Exception):
    """A call refused after authentication: ``status`` 422 (``field`` names the body field)
    or 429 (``retry_after_s``)."""

    def __init__(
        self, status: int, message: str, *, field: str = "", retry_after_s: float = 0.0
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookCall:
    """One authenticated call, as parsed from the body."""

    symbol: str
    side: Side
    exchange: str | None = None
    strength: float | None = None
    grade: SignalGrade | None = None
    price: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    alert_id: str | None = None
    comment: str = ""


def _digest(text: str | bytes) -> bytes:
    # surrogateescape: header bytes that are not UTF-8 (aiohttp keeps them as surrogates) are
    # a wrong secret, not an encoding error
    raw = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    return hashlib.sha256(raw).digest()


class SignalWebhooks:
    """The configured webhooks of the shared trading settings; see the module docstring."""

    def __init__(self, *, generator: SignalGenerator, clock: Clock) -> None:
        self.generator = generator
        self.clock = clock
        self._calls: dict[str, deque[float]] = {}
        self._seen: dict[str, OrderedDict[str, str]] = {}
        self.accepted = 0
        self.duplicates = 0

    def _config(self, name: str) -> WebhookConfig | None:
        return next((w for w in self.generator.config.webhooks if w.name == name), None)

    def names(self) -> list[str]:
        return [w.name for w in self.generator.config.webhooks]

    def verify(
        self,
        name: str,
        *,
        secret: str | None = None,
        signature: str | None = None,
        raw_body: bytes = b"",
    ) -> bool:
        """True when ``secret`` (body or ``?token=``) or ``signature`` (hex HMAC-SHA256 of the
        raw body, optionally ``sha256=``-prefixed) matches webhook ``name``; constant time. An
        unknown name is compared against a dummy secret, so names cannot be told apart."""
        cfg = self._config(name)
        key = cfg.secret.get_secret_value() if cfg is not None else "\x00unknown-webhook"
        ok = False
        if secret is not None:
            ok = hmac.compare_digest(_digest(secret), _digest(key))
        if signature is not None:
            mac = hmac.new(key.encode("utf-8"), raw_body, hashlib.sha256).hexdigest()
            given = signature.strip().lower().removeprefix("sha256=")
            ok = hmac.compare_digest(_digest(given), _digest(mac)) or ok
        return ok and cfg is not None

    def accept(self, name: str, call: WebhookCall) -> dict[str, object]:
        """Publish the signal of an authenticated call (or answer a duplicate); see the module
        docstring. Raises :class:`WebhookRejected`."""
        cfg = self._config(name)
        if cfg is None:
            raise WebhookRejected(404, f"no webhook {name!r}")
        symbol = self._symbol(cfg, call.symbol)
        if cfg.exchange is not None and call.exchange not in (None, cfg.exchange):
            # like its symbols: the secret of a webhook pinned to one venue opens no other
            raise WebhookRejected(
                422,
                f"body.exchange {call.exchange!r}: webhook {cfg.name!r} signals only "
                f"{cfg.exchange!r} (omit exchange)",
                field="body.exchange",
            )
        exchange = call.exchange or cfg.exchange or self.generator.config.exchange
        if exchange is None:
            raise WebhookRejected(
                422,
                "body.exchange is required: neither the webhook nor trading.exchange names one",
                field="body.exchange",
            )
        signal_id = None
        if call.alert_id is not None:
            signal_id = hashlib.sha256(f"webhook:{name}:{call.alert_id}".encode()).hexdigest()[:32]
            seen = self._seen.setdefault(name, OrderedDict())
            if call.alert_id in seen:
                self.duplicates += 1
                return {"status": "duplicate", "signal_id": seen[call.alert_id]}
        self._rate(cfg)
        if signal_id is not None and call.alert_id is not None:
            seen[call.alert_id] = signal_id
            if len(seen) > _MAX_ALERT_IDS:
                seen.popitem(last=False)
        return self._publish(cfg, call, exchange, symbol, signal_id)

    def _publish(
        self, cfg: WebhookConfig, call: WebhookCall, exchange: str, symbol: str, sid: str | None
    ) -> dict[str, object]:
        grades = self.generator.config.grades
        if call.strength is not None:
            strength = call.strength
        elif call.grade is not None:
            strength = strength_of(call.grade, grades)
        else:
            strength = cfg.strength
        grade = call.grade or grade_for(strength, grades)
        now = self.clock.time()
        alert = f" alert {call.alert_id}" if call.alert_id else ""
        sig = self.generator.publish(
            exchange,
            symbol,
            call.side,
            strength,
            source=f"webhook:{cfg.name}",
            reason=(call.comment or f"webhook {cfg.name}{alert}")[:500],
            anomaly_id=None,
            ts=now,
            price=call.price,
            extra=SignalExtra(
                grade=grade,
                stop_loss=call.stop_loss,
                take_profit=call.take_profit,
                signal_id=sid,
                price_given=call.price is not None,
            ),
        )
        self.accepted += 1
        summary: dict[str, object] = {
            "signal_id": sig.id,
            "exchange": exchange,
            "symbol": symbol,
            "side": call.side,
            "strength": strength,
            "grade": str(grade),
        }
        audit = {"webhook": cfg.name, "alert_id": call.alert_id, **summary}
        publish_audit(
            self.generator.hub, self.clock, f"webhook:{cfg.name}", "signal.webhook", audit
        )
        return {"status": "accepted", **summary}

    def _symbol(self, cfg: WebhookConfig, given: str) -> str:
        """The normalized symbol: ``BTC-USDT``, ``btc/usdt``, or ``BTCUSDT`` when it names one of
        the webhook's (or the traded) symbols; it must be one of the webhook's symbols."""
        allowed = cfg.symbols or self.generator.config.symbols
        text = given.strip().upper().replace("/", "-")
        if "-" not in text:
            text = next((s for s in allowed if s.replace("-", "") == text), text)
        try:
            text = normalize_symbol(text)
        except ValueError:
            raise WebhookRejected(
                422,
                f"body.symbol {given[:40]!r}: a market with a separator, like BTC-USDT",
                field="body.symbol",
            ) from None
        if cfg.symbols and text not in cfg.symbols:
            raise WebhookRejected(
                422,
                f"body.symbol {text!r} is not one of webhook {cfg.name!r}'s symbols "
                f"({', '.join(cfg.symbols)})",
                field="body.symbol",
            )
        return text

    def _rate(self, cfg: WebhookConfig) -> None:
        now = self.clock.monotonic()
        calls = self._calls.setdefault(cfg.name, deque())
        while calls and calls[0] <= now - 60.0:
            calls.popleft()
        if len(calls) >= cfg.max_per_minute:
            raise WebhookRejected(
                429,
                f"webhook {cfg.name!r} accepts {cfg.max_per_minute} calls per minute",
                retry_after_s=calls[0] + 60.0 - now,
            )
        calls.append(now)

    def stats(self) -> dict[str, int]:
        return {"accepted": self.accepted, "duplicates": self.duplicates}
