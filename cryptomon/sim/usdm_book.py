"""The state behind the simulator's USD-M endpoints (:mod:`cryptomon.sim.usdm`): one wallet
in USDT, one-way positions per symbol with leverage and margin type, orders, trades and the
income history (realized PnL, commissions, funding), in Binance's JSON shapes."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cryptomon.sim.usdm_algo import cancel_algo, crossed, find_algo, fire, place_algo
from cryptomon.sim.usdm_orders import UsdmError, execute, force_close, place

ZERO = Decimal(0)
BRACKETS = (  # notional cap, max leverage, maintenance margin ratio (Binance BTCUSDT-like)
    (50_000, 125, "0.004"),
    (250_000, 100, "0.005"),
    (3_000_000, 50, "0.01"),
)


@dataclass
class _Position:
    leverage: int = 20
    margin_type: str = "CROSSED"
    qty: Decimal = ZERO
    entry: Decimal = ZERO


@dataclass
class UsdmBook:
    """Wallet, positions, orders and income of one simulated USD-M account."""

    symbols: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {"BTCUSDT": ("BTC", "USDT")}
    )
    wallet: Decimal = Decimal(10_000)
    taker_fee: Decimal = Decimal("0.0004")
    prices: dict[str, Decimal] = field(default_factory=dict)
    misreport_leverage: int | None = None  # symbolConfig answers this instead (a bad read-back)
    # positionRisk answers without unRealizedProfit nor markPrice (ccxt derives the
    # unrealized PnL from the entry and the mark when only the first is missing)
    omit_unrealized: bool = False
    positions: dict[str, _Position] = field(default_factory=dict)
    orders: list[dict[str, Any]] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)
    incomes: list[dict[str, Any]] = field(default_factory=list)
    algos: list[dict[str, Any]] = field(default_factory=list)  # conditional (algo) orders
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # ------------------------------------------------------------------ market

    def set_price(self, symbol: str, price: Decimal) -> None:
        """Move the price; resting stop / take-profit orders whose trigger it crosses fill."""
        self.prices[symbol] = price
        for order in [o for o in self.orders if o["status"] == "NEW"]:
            if order["symbol"] != symbol:
                continue
            stop, side = Decimal(order["stopPrice"]), order["side"]
            up = order["type"] == "STOP_MARKET" and side == "BUY"
            up = up or (order["type"] == "TAKE_PROFIT_MARKET" and side == "SELL")
            if (price >= stop) if up else (price <= stop):
                self._execute(order, price, order["updateTime"])
        for algo in [a for a in self.algos if a["algoStatus"] == "NEW"]:
            if algo["symbol"] == symbol and crossed(algo, price):
                fire(self, algo, price, _now_ms())

    def force_close(self, symbol: str, price: Decimal, kind: str = "liquidation") -> dict[str, Any]:
        """The venue closes the position of ``symbol`` itself at ``price`` (``kind``
        liquidation, adl or settlement; :func:`~cryptomon.sim.usdm_orders.force_close`): the
        symbol's resting orders and algo orders are canceled first, as Binance does."""
        now = _now_ms()
        for order in self.orders:
            if order["symbol"] == symbol and order["status"] == "NEW":
                order.update(status="CANCELED", updateTime=now)
        for algo in self.algos:
            if algo["symbol"] == symbol and algo["algoStatus"] == "NEW":
                algo.update(algoStatus="CANCELED", updateTime=now)
        return force_close(self, symbol, price, kind, now)

    def price_of(self, symbol: str) -> Decimal:
        if symbol not in self.symbols:
            raise UsdmError(400, -1121, "Invalid symbol.")
        if symbol not in self.prices:
            raise UsdmError(400, -1121, f"no price for {symbol} yet")
        return self.prices[symbol]

    def position_of(self, symbol: str) -> _Position:
        self.price_of(symbol)
        return self.positions.setdefault(symbol, _Position())

    def exchange_info(self, now: int) -> dict[str, Any]:
        return {
            "timezone": "UTC",
            "serverTime": now,
            "rateLimits": [],
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True}],
            "symbols": [_symbol_info(s, b, q) for s, (b, q) in self.symbols.items()],
        }

    def premium(self, params: dict[str, str], now: int) -> Any:
        def one(symbol: str) -> dict[str, Any]:
            price = str(self.price_of(symbol))
            return {
                "symbol": symbol,
                "markPrice": price,
                "indexPrice": price,
                "estimatedSettlePrice": price,
                "lastFundingRate": "0.00010000",
                "interestRate": "0.00010000",
                "nextFundingTime": (now // 28_800_000 + 1) * 28_800_000,
                "time": now,
            }

        if "symbol" in params:
            return one(params["symbol"])
        return [one(s) for s in self.symbols if s in self.prices]

    # ------------------------------------------------------------------ account settings

    def leverage(self, params: dict[str, str]) -> dict[str, Any]:
        pos = self.position_of(params["symbol"])
        value = int(params["leverage"])
        if not 1 <= value <= BRACKETS[0][1]:
            raise UsdmError(400, -4028, f"Leverage {value} is not valid")
        pos.leverage = value
        return {"leverage": value, "maxNotionalValue": "50000", "symbol": params["symbol"]}

    def margin_type(self, params: dict[str, str]) -> dict[str, Any]:
        pos = self.position_of(params["symbol"])
        wanted = params["marginType"].upper()
        if wanted == pos.margin_type:
            raise UsdmError(400, -4046, "No need to change margin type.")
        if pos.qty != 0:
            raise UsdmError(400, -4048, "Margin type cannot be changed if there exists position.")
        pos.margin_type = wanted
        return {"code": 200, "msg": "success"}

    def symbol_config(self, params: dict[str, str]) -> list[dict[str, Any]]:
        wanted = [params["symbol"]] if "symbol" in params else list(self.symbols)
        return [
            {
                "symbol": s,
                "marginType": self.positions.get(s, _Position()).margin_type,
                "isAutoAddMargin": "false",
                "leverage": self.misreport_leverage or self.positions.get(s, _Position()).leverage,
                "maxNotionalValue": "50000",
            }
            for s in wanted
        ]

    def brackets(self, params: dict[str, str]) -> list[dict[str, Any]]:
        tiers = []
        floor = 0
        for i, (cap, lev, mmr) in enumerate(BRACKETS, start=1):
            tiers.append(
                {
                    "bracket": i,
                    "initialLeverage": lev,
                    "notionalCap": cap,
                    "notionalFloor": floor,
                    "maintMarginRatio": float(mmr),
                    "cum": 0.0,
                }
            )
            floor = cap
        return [{"symbol": s, "brackets": tiers} for s in self.symbols]

    # ------------------------------------------------------------------ positions, balance

    def position_risk(self, params: dict[str, str]) -> list[dict[str, Any]]:
        out = []
        for symbol, pos in self.positions.items():
            if "symbol" in params and params["symbol"] != symbol:
                continue
            mark = self.prices.get(symbol, ZERO)
            out.append(
                {
                    "symbol": symbol,
                    "positionSide": "BOTH",
                    "positionAmt": str(pos.qty),
                    "entryPrice": str(pos.entry),
                    "breakEvenPrice": str(pos.entry),
                    "markPrice": str(mark),
                    "unRealizedProfit": str(pos.qty * (mark - pos.entry)),
                    "liquidationPrice": "0",
                    "leverage": str(pos.leverage),
                    "maxNotionalValue": "50000",
                    "marginType": "isolated" if pos.margin_type == "ISOLATED" else "cross",
                    "isolatedMargin": "0",
                    "isAutoAddMargin": "false",
                    "notional": str(pos.qty * mark),
                    "isolatedWallet": "0",
                    "updateTime": 1,
                }
            )
            if self.omit_unrealized:
                del out[-1]["unRealizedProfit"], out[-1]["markPrice"]
        return out

    def unrealized(self) -> Decimal:
        return sum(
            (p.qty * (self.prices.get(s, ZERO) - p.entry) for s, p in self.positions.items()),
            ZERO,
        )

    def margin_free(self) -> Decimal:
        """Wallet and unrealized PnL less the initial margin of the open positions: what the
        margin of a new order comes out of."""
        used = sum(
            (abs(p.qty) * self.prices.get(s, ZERO) / p.leverage for s, p in self.positions.items()),
            ZERO,
        )
        return self.wallet + self.unrealized() - used

    def balance(self, _params: dict[str, str]) -> list[dict[str, Any]]:
        wallet = str(self.wallet)
        margin = str(self.wallet + self.unrealized())  # like Binance: wallet + unrealized
        return [
            {
                "accountAlias": "sim",
                "asset": "USDT",
                "balance": wallet,
                "marginBalance": margin,
                "crossWalletBalance": wallet,
                "crossUnPnl": str(self.unrealized()),
                "availableBalance": wallet,
                "maxWithdrawAmount": wallet,
                "marginAvailable": True,
                "updateTime": 1,
            }
        ]

    def account(self, _params: dict[str, str]) -> dict[str, Any]:
        wallet = str(self.wallet)
        asset = {
            "asset": "USDT",
            "walletBalance": wallet,
            "unrealizedProfit": str(self.unrealized()),
            "marginBalance": str(self.wallet + self.unrealized()),
            "availableBalance": wallet,
            "crossWalletBalance": wallet,
            "maxWithdrawAmount": wallet,
            "updateTime": 1,
        }
        return {
            "totalWalletBalance": wallet,
            "availableBalance": wallet,
            "assets": [asset],
            "positions": self.position_risk({}),
        }

    # ------------------------------------------------------------------ orders

    def new_order(self, params: dict[str, str]) -> dict[str, Any]:
        return place(self, params)

    def get_order(self, params: dict[str, str]) -> dict[str, Any]:
        return self.find(params)

    def cancel_order(self, params: dict[str, str]) -> dict[str, Any]:
        order = self.find(params)
        if order["status"] != "NEW":
            raise UsdmError(400, -2011, "Unknown order sent.")
        order["status"] = "CANCELED"
        return order

    def find(self, params: dict[str, str]) -> dict[str, Any]:
        cid, oid = params.get("origClientOrderId"), params.get("orderId")
        for order in self.orders:
            if order["symbol"] == params.get("symbol") and (
                order["clientOrderId"] == cid or str(order["orderId"]) == oid
            ):
                return order
        raise UsdmError(400, -2013, "Order does not exist.")

    def open_orders(self, params: dict[str, str]) -> list[dict[str, Any]]:
        symbol = params.get("symbol")
        return [o for o in self.orders if o["status"] == "NEW" and symbol in (None, o["symbol"])]

    # ------------------------------------------------------------------ algo orders

    def new_algo(self, params: dict[str, str]) -> Any:
        return place_algo(self, self.algos, params, _now_ms())

    def get_algo(self, params: dict[str, str]) -> Any:
        return find_algo(self.algos, params)

    def cancel_algo(self, params: dict[str, str]) -> Any:
        return cancel_algo(self.algos, params, _now_ms())

    def open_algos(self, params: dict[str, str]) -> list[dict[str, Any]]:
        symbol = params.get("symbol")
        return [a for a in self.algos if a["algoStatus"] == "NEW" and symbol in (None, a["symbol"])]

    def all_algos(self, params: dict[str, str]) -> list[dict[str, Any]]:
        return [a for a in self.algos if a["symbol"] == params.get("symbol")]

    def user_trades(self, params: dict[str, str]) -> list[dict[str, Any]]:
        since = int(params.get("startTime", 0))
        oid = params.get("orderId")
        return [
            t
            for t in self.trades
            if t["symbol"] == params.get("symbol")
            and t["time"] >= since
            and oid in (None, str(t["orderId"]))
        ]

    def income(self, params: dict[str, str]) -> list[dict[str, Any]]:
        since = int(params.get("startTime", 0))
        kind = params.get("incomeType")
        return [
            i
            for i in self.incomes
            if i["time"] >= since
            and kind in (None, i["incomeType"])
            and params.get("symbol") in (None, i["symbol"])
        ]

    def _execute(self, order: dict[str, Any], price: Decimal, now: int) -> None:
        execute(self, order, price, now)

    def settle_funding(self, rate: Decimal, now: int) -> None:
        """Pay funding at ``rate`` on every open position at its mark (longs pay if > 0)."""
        for symbol, pos in self.positions.items():
            if pos.qty == 0:
                continue
            amount = -pos.qty * self.prices[symbol] * rate
            self.wallet += amount
            self.add_income(symbol, "FUNDING_FEE", amount, now)

    def add_income(self, symbol: str, kind: str, amount: Decimal, now: int) -> None:
        self.incomes.append(
            {
                "symbol": symbol,
                "incomeType": kind,
                "income": str(amount),
                "asset": "USDT",
                "info": kind,
                "time": now,
                "tranId": next(self._ids),
                "tradeId": "",
            }
        )

    def next_id(self) -> int:
        return next(self._ids)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _symbol_info(symbol: str, base: str, quote: str) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "pair": symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": base,
        "quoteAsset": quote,
        "marginAsset": quote,
        "pricePrecision": 2,
        "quantityPrecision": 3,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.10",
                "maxPrice": "1000000",
                "tickSize": "0.10",
            },
            {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": "0.001",
                "maxQty": "120",
                "stepSize": "0.001",
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MIN_NOTIONAL", "notional": "5"},
        ],
        "orderTypes": [
            "LIMIT",
            "MARKET",
            "STOP",
            "STOP_MARKET",
            "TAKE_PROFIT",
            "TAKE_PROFIT_MARKET",
        ],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }
