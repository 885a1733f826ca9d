"""Webhook signals: external senders (TradingView alerts, scripts) turned into ``Signal``s.

Each configured webhook (``trading.webhooks``) has a secret, the symbols it may signal and a
rate. :meth:`SignalWebhooks.verify` checks a call's secret (the body's ``secret``, a
``?token=`` query parameter, or an ``X-Signature`` HMAC) in constant time.
:meth:`SignalWebhooks.accept` then dedupes by the sender's alert id (the signal id is
derived from it, so a retry never makes a second order), rate-limits per webhook, publishes
the graded signal through the :class:`SignalGenerator` (the same gates, risk checks and order
engine as any signal) and audits the call without its secret.

Signed calls (``X-Signature``) must also carry ``X-Signature-Timestamp``, the Unix time in
whole seconds at which the sender signed, and the signature covers it::

    signing string  = <X-Signature-Timestamp value, as sent> + "." + <raw request body>
    X-Signature     = hex(HMAC-SHA256(key=<webhook secret, UTF-8>, msg=signing string))
                      (optionally written "sha256=<hex>")

e.g. ``ts=$(date +%s); sig=$(printf '%s.%s' "$ts" "$body" | openssl dgst -sha256 -hmac
"$secret" -r | cut -d' ' -f1)``. A timestamp more than the webhook's ``signature_window_s``
(300 s) away from the daemon's clock is refused (401 ``signature_expired``), and a signature
accepted once is refused again within that window (409 ``signature_replayed``), so a captured
signed call cannot be replayed, with or without an ``alert_id``. The older form, an
HMAC of the body alone without the timestamp header, could be replayed forever: it is refused
with 401 ``signature_timestamp_missing`` explaining the signing string above. A secret sent
in the body or as ``?token=`` travels with every call (whoever sees a call can make new
ones), so it has no replay window; ``alert_id`` still dedupes retries.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from cryptomon.clock import Clock
from cryptomon.config import WebhookConfig, normalize_symbol
from cryptomon.decimals import float_decimal
from cryptomon.events import Side
from cryptomon.kinds import SignalGrade
from cryptomon.trading.protection import round_price
from cryptomon.trading.runtime import publish_audit
from cryptomon.trading.signals.generator import SignalExtra, SignalGenerator
from cryptomon.trading.signals.grades import grade_for, strength_of

_MAX_ALERT_IDS = 10_000  # per webhook, LRU evicted
# signatures remembered per webhook for their window; beyond, signed calls are refused (429)
# rather than forgetting one still inside its window (only the secret's holder adds entries)
_MAX_SIGNATURES = 100_000
TIMESTAMP_HEADER = "X-Signature-Timestamp"
# the smallest price an order row holds (NUMERIC(36, 18)): the step when no tick is known
_STORED_STEP = Decimal("1e-18")
_MARKETS_RETRY_S = 5.0  # Retry-After of a 503 while the watched markets are not known yet


class WebhookRejected(Exception):
    """A call refused after authentication: ``status`` 422 (``field`` names the body field),
    429 (``retry_after_s``), 503 while the watched markets are not known yet, or a signed
    call that is stale (401) or replayed (409), named by ``code``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        field: str = "",
        retry_after_s: float = 0.0,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.retry_after_s = retry_after_s
        self.code = code


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


def _symbols_of(markets: Mapping[str, Collection[str]]) -> list[str]:
    """Every market a feed watches (on any exchange), to read a symbol given without a
    separator by."""
    return sorted({symbol for symbols in markets.values() for symbol in symbols})


def _signing_string(timestamp: str, raw_body: bytes) -> bytes:
    """What ``X-Signature`` signs: the timestamp header's value as sent, ".", the raw body."""
    return timestamp.encode("utf-8", "surrogateescape") + b"." + raw_body


def _digest(text: str | bytes) -> bytes:
    # surrogateescape: header bytes that are not UTF-8 (aiohttp keeps them as surrogates) are
    # a wrong secret, not an encoding error
    raw = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    return hashlib.sha256(raw).digest()


class SignalWebhooks:
    """The configured webhooks of the shared trading settings; see the module docstring."""

    def __init__(
        self,
        *,
        generator: SignalGenerator,
        clock: Clock,
        markets: Callable[[], Mapping[str, Collection[str]] | None] | None = None,
    ) -> None:
        """``markets``: the exchanges the daemon's feeds watch, each with its symbols (empty:
        any); a call for another exchange or market is refused (422), since no signal for it
        could trade. It answers None while they are not known yet (a brain whose collectors
        have not reported): every call is refused with 503 ``markets_unknown``. None or an
        empty mapping: not checked."""
        self.generator = generator
        self.clock = clock
        self.markets = markets
        self._calls: dict[str, deque[float]] = {}
        self._seen: dict[str, OrderedDict[str, str]] = {}
        self._signatures: dict[str, dict[bytes, float]] = {}  # signature -> expiry (Unix s)
        self.accepted = 0
        self.duplicates = 0
        # correctly signed calls refused: seen before, timestamp outside the window, unstamped
        self.replays = 0
        self.expired = 0
        self.unstamped = 0

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
        timestamp: str | None = None,
    ) -> bool:
        """True when ``secret`` (body or ``?token=``) or ``signature`` (``X-Signature``: hex
        HMAC-SHA256 of ``timestamp + "." + raw_body``, optionally ``sha256=``-prefixed; see the
        module docstring) matches webhook ``name``; constant time. An unknown name is compared
        against a dummy secret, so names cannot be told apart.

        A matching signature must also be fresh: :class:`WebhookRejected` 401 when
        ``timestamp`` (``X-Signature-Timestamp``) is missing, not whole Unix seconds, or
        outside the webhook's ``signature_window_s``; 409 when the same signature was accepted
        within that window. A matching ``secret`` needs neither."""
        cfg = self._config(name)
        key = cfg.secret.get_secret_value() if cfg is not None else "\x00unknown-webhook"
        if secret is not None and hmac.compare_digest(_digest(secret), _digest(key)):
            return cfg is not None
        if signature is None:
            return False
        given = signature.strip().lower().removeprefix("sha256=")
        signed = raw_body if timestamp is None else _signing_string(timestamp, raw_body)
        mac = hmac.new(key.encode("utf-8"), signed, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(_digest(given), _digest(mac)) or cfg is None:
            return False
        self._check_fresh(cfg, timestamp, bytes.fromhex(mac))
        return True

    def _check_fresh(self, cfg: WebhookConfig, timestamp: str | None, mac: bytes) -> None:
        """Refuse a correctly signed call that is unstamped, stale or seen before; remember it."""
        window = cfg.signature_window_s
        how = (
            f"send {TIMESTAMP_HEADER}: <Unix time in seconds> and X-Signature: hex HMAC-SHA256 "
            f"of '<{TIMESTAMP_HEADER}>.<body>' with the webhook's secret"
        )
        if timestamp is None:
            self.unstamped += 1
            raise WebhookRejected(
                401,
                f"the {TIMESTAMP_HEADER} header is required with X-Signature (an unstamped "
                f"signature can be replayed): {how}",
                code="signature_timestamp_missing",
            )
        stamp = timestamp.strip()
        if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
            self.unstamped += 1
            raise WebhookRejected(
                401,
                f"{TIMESTAMP_HEADER} {timestamp[:20]!r} is not a Unix time in whole seconds; {how}",
                code="signature_timestamp_invalid",
            )
        now = self.clock.time()
        skew = int(stamp) - now
        if abs(skew) > window:
            self.expired += 1
            raise WebhookRejected(
                401,
                f"{TIMESTAMP_HEADER} is {abs(skew):.0f} s "
                f"{'ahead of' if skew > 0 else 'behind'} the daemon's clock; webhook "
                f"{cfg.name!r} accepts {window:g} s (signature_window_s): sign each call when "
                "it is sent, with a synchronized clock",
                code="signature_expired",
            )
        seen = self._signatures.setdefault(cfg.name, {})
        expiry = seen.get(mac)
        if expiry is not None and expiry >= now:
            self.replays += 1
            raise WebhookRejected(
                409,
                f"this X-Signature was already accepted (replay); sign each call with the "
                f"current {TIMESTAMP_HEADER}",
                code="signature_replayed",
            )
        if len(seen) >= _MAX_SIGNATURES:
            for old in [m for m, exp in seen.items() if exp < now]:
                del seen[old]
            if len(seen) >= _MAX_SIGNATURES:
                raise WebhookRejected(
                    429,
                    f"webhook {cfg.name!r} has {_MAX_SIGNATURES} signed calls within "
                    f"signature_window_s; try again later",
                    retry_after_s=window,
                )
        seen[mac] = int(stamp) + window  # past this the timestamp check refuses it anyway

    def forget_signature(self, name: str, signature: str | None) -> None:
        """Forget a verified ``signature`` whose call :meth:`accept` then refused (429 past
        ``max_per_minute``, 422): it was never accepted, so the same signed call sent again
        (after Retry-After) is judged anew instead of being refused as a replay."""
        if signature is None:
            return
        given = signature.strip().lower().removeprefix("sha256=")
        try:
            mac = bytes.fromhex(given)
        except ValueError:
            return
        self._signatures.get(name, {}).pop(mac, None)

    def accept(self, name: str, call: WebhookCall) -> dict[str, object]:
        """Publish the signal of an authenticated call (or answer a duplicate); see the module
        docstring. Raises :class:`WebhookRejected`."""
        cfg = self._config(name)
        if cfg is None:
            raise WebhookRejected(404, f"no webhook {name!r}")
        markets = self._markets()
        symbol = self._symbol(cfg, call.symbol, markets)
        if cfg.exchange is not None and call.exchange not in (None, cfg.exchange):
            # like its symbols: the secret of a webhook pinned to one venue opens no other
            raise WebhookRejected(
                422,
                f"body.exchange {call.exchange!r}: webhook {cfg.name!r} signals only "
                f"{cfg.exchange!r} (omit exchange)",
                field="body.exchange",
            )
        traded = self.generator.config.exchange
        exchange = call.exchange or cfg.exchange or traded
        if exchange is None:
            raise WebhookRejected(
                422,
                "body.exchange is required: neither the webhook nor trading.exchange names one",
                field="body.exchange",
            )
        if traded is not None and exchange != traded:  # the engine would drop its signal
            raise WebhookRejected(
                422,
                f"body.exchange {exchange!r}: trading.exchange is {traded!r}, signals for "
                "another exchange are never traded (omit exchange)",
                field="body.exchange",
            )
        self._watched(markets, exchange, symbol)
        self._levels(exchange, symbol, call)
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

    def _markets(self) -> Mapping[str, Collection[str]]:
        """The markets the feeds watch (empty: not checked); 503 while not known yet."""
        markets = self.markets() if self.markets is not None else {}
        if markets is None:
            raise WebhookRejected(
                503,
                "the markets this daemon watches are not known yet (a brain learns them from "
                "its collectors over the bus, and none has reported within 3 "
                "bus.health_interval_s): a signal could be neither checked nor traded; try "
                "again shortly",
                retry_after_s=_MARKETS_RETRY_S,
                code="markets_unknown",
            )
        return markets

    def _watched(self, markets: Mapping[str, Collection[str]], exchange: str, symbol: str) -> None:
        """Refuse an exchange no feed watches, or a market its feed does not (no price: the
        engine could never trade it; the call was answered 'accepted' all the same)."""
        if not markets:
            return
        watched = markets.get(exchange)
        if watched is None:
            raise WebhookRejected(
                422,
                f"body.exchange {exchange[:40]!r} is not an exchange this daemon watches "
                f"(expected one of {', '.join(sorted(markets))})",
                field="body.exchange",
            )
        if watched and symbol not in watched:
            raise WebhookRejected(
                422,
                f"body.symbol {symbol!r} is not a market the daemon watches on {exchange!r} "
                f"(expected one of {', '.join(sorted(watched))})",
                field="body.symbol",
            )

    def _tick(self, exchange: str, symbol: str) -> Decimal | None:
        """The market's price step as the engine rounds to it: the instrument spec's, else
        the paper broker's; None when neither is known here (a live broker's own market)."""
        market = self.generator.market
        spec = market.spec(exchange, symbol) if market is not None else None
        if spec is not None and spec.tick_size is not None and spec.tick_size > 0:
            return spec.tick_size
        cfg = self.generator.config
        return float_decimal(cfg.paper.tick_size) if cfg.mode == "paper" else None

    def _levels(self, exchange: str, symbol: str, call: WebhookCall) -> None:
        """Refuse a price, stop-loss or take-profit that rounds to 0 as the engine rounds it
        (a long's stop down, its take-profit up, a short's the other way; the price to the
        nearest tick): a long's stop of 1e-30 became a stop of 0, one that never triggers.
        Without a known tick, the step of an order row (1e-18) stands for it."""
        tick = self._tick(exchange, symbol)
        step = tick if tick is not None else _STORED_STEP
        buy = call.side == "buy"
        for name, value, up in (
            ("price", call.price, None),
            ("stop_loss", call.stop_loss, not buy),
            ("take_profit", call.take_profit, buy),
        ):
            if value is None:
                continue
            level = float_decimal(value)
            if up is None:
                rounded = (level / step).to_integral_value(ROUND_HALF_EVEN) * step
            else:
                rounded = round_price(level, step, up=up)
            if rounded > 0:
                continue
            where = (
                f"the market's tick {tick:f}"
                if tick is not None
                else f"{step:f}, the smallest price an order row holds"
            )
            raise WebhookRejected(
                422,
                f"body.{name} {str(value)[:40]} rounds to 0 at {where}: expected a price "
                f"above 0 at that step (at least {step:f})",
                field=f"body.{name}",
            )

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

    def _symbol(
        self, cfg: WebhookConfig, given: str, markets: Mapping[str, Collection[str]]
    ) -> str:
        """The normalized symbol: ``BTC-USDT``, ``btc/usdt``, or ``BTCUSDT`` (TradingView's
        ``{{ticker}}``) when it names one of the webhook's symbols, else of the traded ones,
        else of the markets the feeds watch; it must be one of the webhook's symbols."""
        allowed = cfg.symbols or self.generator.config.symbols or _symbols_of(markets)
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
        traded = self.generator.config.symbols
        if traded and text not in traded:  # the engine would drop its signal
            raise WebhookRejected(
                422,
                f"body.symbol {text!r} is not one of trading.symbols ({', '.join(traded)}); "
                "signals for other markets are never traded",
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
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "replays": self.replays,
            "expired": self.expired,
            "unstamped": self.unstamped,
        }
