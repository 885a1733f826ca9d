"""Every message that travels on the hub (DESIGN.md 3.1).

Events are frozen, slotted, keyword-only dataclasses. Each carries ``exchange``, ``symbol``
(cryptofeed-normalized, e.g. ``BTC-USDT``), ``ts`` (exchange/event time, epoch seconds) and
``ts_recv`` (when this process received or created it). Market data fields are ``float``;
order, fill, position and PnL amounts are ``Decimal``.

The hub routes on the concrete class, so the class *is* the topic.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import MISSING, dataclass, field, fields
from decimal import Decimal
from enum import StrEnum
from types import MemberDescriptorType
from typing import Any, Literal, TypeVar

from cryptomon.kinds import OrderState, SignalGrade

Side = Literal["buy", "sell"]
T = TypeVar("T")


def new_id() -> str:
    """A random 32-hex-character identifier for anomalies, signals and the like."""
    return uuid.uuid4().hex


class Severity(StrEnum):
    """Anomaly severity, ordered: compare with :meth:`rank`."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Common fields of every hub message."""

    exchange: str
    symbol: str
    ts: float
    ts_recv: float


# --------------------------------------------------------------------------- market data


@dataclass(frozen=True, slots=True, kw_only=True)
class Trade(Event):
    """One public trade. ``side`` is the taker side.

    Units (DESIGN.md convention 15): ``amount`` is in base units, computed from the market's
    instrument spec; ``contracts`` is the venue's own quantity where it differs (derivatives,
    scaled quantities), else None; ``notional`` is the value in the quote currency and
    ``notional_usd`` in USD (None when the spec is unknown or the quote is not USD-like and no
    fresh conversion mid exists). Without a spec ``amount`` is the venue quantity as sent.
    """

    price: float
    amount: float
    side: Side
    trade_id: str | None = None
    contracts: float | None = None
    notional: float | None = None
    notional_usd: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BookTop(Event):
    """Best bid/ask plus depth summary over the top ``levels`` levels of each side.

    ``imbalance`` = (bid_depth - ask_depth) / (bid_depth + ask_depth), in [-1, 1];
    depths are in base currency.
    """

    bid: float
    bid_size: float
    ask: float
    ask_size: float
    spread: float
    spread_bps: float
    bid_depth: float
    ask_depth: float
    imbalance: float
    levels: int
    # book updates this top stands for: the feed publishes one BookTop per symbol per
    # event-loop turn, from the latest book (DESIGN.md section 7)
    updates: int = 1
    # the venue's quantity at the best bid / ask where it differs from the base units above
    # (contracts); None on spot and where the spec is unknown
    bid_contracts: float | None = None
    ask_contracts: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BookSnapshot(Event):
    """Top N levels of each side, best first: ``((price, size), ...)``, sizes in base units
    like :class:`BookTop`'s (a derivative's contracts converted by the instrument spec, an
    inverse contract's at its level's price).

    ``contract_bids``/``contract_asks`` are the same levels in the venue's quantity
    (contracts) where it differs from the base units; empty on spot and where the spec is
    unknown (the sizes are then the venue's as sent). :attr:`venue_bids`/:attr:`venue_asks`
    give the venue's levels in both cases (what an order's amount is counted in)."""

    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]
    contract_bids: tuple[tuple[float, float], ...] = ()
    contract_asks: tuple[tuple[float, float], ...] = ()

    @property
    def venue_bids(self) -> tuple[tuple[float, float], ...]:
        """The bid levels in the venue's quantity (contracts on a derivative)."""
        return self.contract_bids or self.bids

    @property
    def venue_asks(self) -> tuple[tuple[float, float], ...]:
        """The ask levels in the venue's quantity (contracts on a derivative)."""
        return self.contract_asks or self.asks


@dataclass(frozen=True, slots=True, kw_only=True)
class Ticker(Event):
    bid: float
    ask: float
    last: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Candle(Event):
    """OHLCV for ``interval`` (e.g. ``1m``) starting at ``start`` (epoch seconds)."""

    interval: str
    start: float
    end: float
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int | None = None
    closed: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Funding(Event):
    """A funding-rate announcement of a perpetual. ``rate`` and ``predicted_rate`` are
    fractions of the position's value per funding period (the period that ends at
    ``next_funding_time``, epoch seconds UTC: 8 hours on most venues, 1 hour on Kraken
    Futures); None where the venue's message did not carry them (unknown, which is not a
    0 % rate). ``mark_price`` is the venue's mark in quote currency, None when not sent."""

    rate: float | None
    mark_price: float | None = None
    predicted_rate: float | None = None
    next_funding_time: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Liquidation(Event):
    """A forced close; ``amount``/``contracts``/``notional``/``notional_usd`` as on Trade."""

    side: Side
    price: float
    amount: float
    status: str = ""
    contracts: float | None = None
    notional: float | None = None
    notional_usd: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FlaggedTrade(Event):
    """A trade the quality layer keeps away from detectors, signals and brokers: ``flag`` is
    ``historical`` (sent on subscribe or older than the connection) or ``bad_print``
    (quarantined: far outside the recent band or the book). Stored with its flag."""

    trade: Trade
    flag: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenInterest(Event):
    """Open interest in base units (the venue's contracts converted by the instrument spec;
    an inverse contract's at the market's latest book mid, NaN before any was seen), the
    venue's contracts beside it where the two differ and the quote value where the spec is
    known (an inverse contract's needs no price)."""

    open_interest: float
    contracts: float | None = None
    notional: float | None = None


MARKET_DATA: tuple[type[Event], ...] = (
    Trade,
    BookTop,
    BookSnapshot,
    Ticker,
    Candle,
    Funding,
    Liquidation,
    OpenInterest,
)

# --------------------------------------------------------------------------- detection


@dataclass(frozen=True, slots=True, kw_only=True)
class Anomaly(Event):
    """A detector finding. ``ts`` is the time of the triggering event, ``ts_detected`` when the
    detector published it. ``reasons`` are short human strings such as ``"Z-score: 3.50"``."""

    kind: str
    severity: Severity
    value: float
    threshold: float
    confidence: float
    z_score: float | None = None
    price_change_pct: float | None = None
    reasons: tuple[str, ...] = ()
    window_mean: float | None = None
    window_std: float | None = None
    samples: int = 0
    ts_detected: float = 0.0
    id: str = field(default_factory=new_id)


# --------------------------------------------------------------------------- trading


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal(Event):
    """A trading idea: ``side`` with ``strength`` in [0, 1], caused by ``anomaly_id`` or a rule.

    ``grade`` is the strength's grade (``trading.grades``; None = not graded yet: the order
    engine grades it by its thresholds). ``stop_loss`` / ``take_profit`` are prices the sender
    asked for (a webhook); None = the configured percentages.
    """

    side: Side
    strength: float
    source: str
    reason: str = ""
    price: float | None = None
    anomaly_id: str | None = None
    grade: SignalGrade | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    id: str = field(default_factory=new_id)


OrderType = Literal["market", "limit", "stop_market", "stop_limit", "take_profit"]
OrderOrigin = Literal[
    "signal",
    "manual",
    "stop_loss",
    "take_profit",
    "kill_switch",
    "reconcile",
    "liquidation",  # placed by the venue itself (the paper broker's forced closes)
    "settlement",
    "adl",  # the venue's auto-deleveraging (a live venue's mark)
    "venue",  # a live account's order the engine did not send and no mark names
]


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderIntent(Event):
    """What the engine wants to send; written to the database before it is sent."""

    client_order_id: str
    side: Side
    type: OrderType
    amount: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    reduce_only: bool = False
    origin: OrderOrigin = "signal"
    signal_id: str | None = None
    anomaly_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderUpdate(Event):
    """A change of an order's state as the engine knows it."""

    client_order_id: str
    state: OrderState
    side: Side
    type: OrderType
    amount: Decimal
    filled: Decimal = Decimal(0)
    price: Decimal | None = None
    avg_price: Decimal | None = None
    exchange_order_id: str | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Fill(Event):
    """One execution of an order; unique per (exchange, trade_id)."""

    trade_id: str
    client_order_id: str
    side: Side
    amount: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: Literal["maker", "taker"] = "taker"
    exchange_order_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionUpdate(Event):
    """A position after a fill or a mark. ``amount`` is signed (negative = short).

    On a perpetual or future ``amount`` is venue contracts, the PnL, fees, margins and funding
    are in ``settle`` (the quote of a linear contract, the base coin of an inverse one), and
    the contract fields are set; on spot they keep their defaults."""

    amount: Decimal
    avg_price: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
    mark_price: Decimal | None = None
    side: Literal["long", "short", "flat"] | None = None
    settle: str | None = None
    contracts: Decimal | None = None
    base_amount: Decimal | None = None
    leverage: Decimal | None = None
    margin_mode: str | None = None
    initial_margin: Decimal | None = None
    maintenance_margin: Decimal | None = None
    liquidation_price: Decimal | None = None
    funding: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtectionUpdate(Event):
    """The stop of an open position moved on the book (a trailing stop): its level and the
    best price it trails from, for the protection armed by the entry ``entry_id``. Persisted
    (the latest per market) so that a restart protects the position at the trailed level,
    not back at its entry's. Published throttled (see ``trading.trailing_stop_save_interval_s``)
    and once more at the engine's stop."""

    entry_id: str
    side: Literal["long", "short"]
    stop: Decimal
    best: Decimal
    take: Decimal | None = None
    trail_pct: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskEvent(Event):
    """A risk rejection or a change of the risk state (active / reducing / halted)."""

    kind: Literal["rejected", "state_change", "kill_switch", "limit"]
    state: str
    reason: str
    client_order_id: str | None = None
    check: str = ""


# --------------------------------------------------------------------------- operations

FeedState = Literal[
    "connecting", "live", "stale", "disconnected", "gap", "resync", "error", "delisted"
]


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedStatus(Event):
    """Health change of one exchange channel. ``symbol`` is empty for the whole connection."""

    channel: str
    status: FeedState
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice(Event):
    """A system notice (daemon start/stop, database unreachable, ...). ``exchange`` and
    ``symbol`` are empty when not about a market."""

    code: str
    message: str
    level: Literal["info", "warning", "error", "critical"] = "info"
    # what the notice is about within its code (a resource: ``rss_bytes``); notifications
    # deduplicate per code and subject, so one resource's alert never hides another's
    subject: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationRecord(Event):
    """The final outcome of one notification on one channel (persisted by the store)."""

    channel: str
    status: Literal["sent", "failed", "suppressed", "digested"]
    title: str
    body: str = ""
    attempts: int = 0
    error: str = ""
    priority: str = ""
    event_type: str = ""
    ref_id: str | None = None


AUDIT_ORIGIN: ContextVar[tuple[str, str]] = ContextVar("audit_origin", default=("", ""))
"""``(client address, request id)`` of the API request being served. The API sets it for the
duration of each request, so every ``AuditEntry`` created while serving it (by the API or by
the component it calls) says where the action came from."""


def _origin_client() -> str:
    return AUDIT_ORIGIN.get()[0]


def _origin_request_id() -> str:
    return AUDIT_ORIGIN.get()[1]


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry(Event):
    """A manual action, configuration change or denied attempt: who did what, from where
    (client address, request id; from :data:`AUDIT_ORIGIN` unless given), with which payload
    (JSON text)."""

    actor: str
    action: str
    payload: str = "{}"
    client: str = field(default_factory=_origin_client)
    request_id: str = field(default_factory=_origin_request_id)


DURABLE: tuple[type[Event], ...] = (
    Anomaly,
    Signal,
    OrderIntent,
    OrderUpdate,
    Fill,
    PositionUpdate,
    ProtectionUpdate,
    RiskEvent,
    NotificationRecord,
    AuditEntry,
)
"""Kinds that are never dropped by any queue (DESIGN.md section 5)."""


# --------------------------------------------------------------------------- construction

_FACTORY: Any = object()  # a parameter left to its field's default_factory


def slot_init(cls: type[T]) -> type[T]:
    """Give the frozen slotted dataclass ``cls`` an ``__init__`` that stores each field
    through its slot's descriptor instead of the generated ``object.__setattr__(self, name,
    value)`` per field (about half the cost of building one): the same parameters (positional
    or keyword-only), defaults and factories (called in field order), the same frozen
    instance. A class with an ``__post_init__``, a field outside ``__init__`` or no slots
    keeps the generated one. Returns ``cls`` (usable as a decorator above ``@dataclass``)."""
    spec = fields(cls)  # type: ignore[arg-type]
    if hasattr(cls, "__post_init__") or not all(f.init for f in spec):
        return cls
    ns: dict[str, Any] = {"_FACTORY": _FACTORY}
    positional: list[str] = []
    keyword: list[str] = []
    body: list[str] = []
    for f in spec:
        slot = getattr(cls, f.name, None)
        if not isinstance(slot, MemberDescriptorType):
            return cls
        ns[f"_set_{f.name}"] = slot.__set__
        if f.default is not MISSING:
            ns[f"_default_{f.name}"] = f.default
            param = f"{f.name}=_default_{f.name}"
        elif f.default_factory is not MISSING:
            ns[f"_factory_{f.name}"] = f.default_factory
            param = f"{f.name}=_FACTORY"
            body.append(f"    if {f.name} is _FACTORY:\n        {f.name} = _factory_{f.name}()")
        else:
            param = f.name
        (keyword if f.kw_only else positional).append(param)
        body.append(f"    _set_{f.name}(self, {f.name})")
    params = ["self", *positional, *(["*", *keyword] if keyword else [])]
    exec(f"def __init__({', '.join(params)}):\n" + "\n".join(body), ns)  # noqa: S102
    init = ns["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__annotations__ = {**{f.name: f.type for f in spec}, "return": None}
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


for _cls in [c for c in list(globals().values()) if isinstance(c, type) and issubclass(c, Event)]:
    if _cls.__module__ == __name__:
        slot_init(_cls)
del _cls
