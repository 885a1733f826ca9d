# ruff: noqa: PLR0917  (numba kernels take their state arrays positionally)
"""Arbitrage kernel: buy on one venue's ask, sell on another's bid, net of both taker fees.

Markets of one *group* (the same base asset, quotes that track each other) on different
exchanges are compared on every quote update: the net edge of buying at ``ask_a`` with fee
``f_a`` and selling at ``bid_b`` with fee ``f_b`` is ``bid_b (1 - f_b) / (ask_a (1 + f_a)) - 1``
(in bps); the size executable at that edge is the smaller of the two top-of-book sizes. A
group fires once per excursion (again only at a higher severity level) and re-arms when the
best edge falls below ``REARM`` x the threshold.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from cryptomon.detect.detectors_nb import REARM, fire_nb, level_nb

# finding codes
CODE_ARBITRAGE = 0

# per-market state columns (row = symbol id)
Q_BID = 0
Q_ASK = 1
Q_BID_SIZE = 2
Q_ASK_SIZE = 3
Q_TS = 4  # time of the quote (0 = none yet)
Q_COLS = 5

# per-group state columns (row = group id)
G_LVL = 0  # fired level + 1 of the running excursion (0 = armed)
G_COLS = 1

# the legs of each finding, by the batch row that fired (columns of ``legs``)
L_BUY = 0  # symbol id bought at its ask
L_SELL = 1  # symbol id sold at its bid
L_BUY_PX = 2
L_SELL_PX = 3
L_COLS = 4

ARBITRAGE_PARAMS = np.dtype(
    [
        ("fee", np.float64),  # this market's venue taker fee, fraction
        ("edge_bps", np.float64),  # net edge that fires
        ("max_age_s", np.float64),  # the other venue's quote older than this is ignored
        ("min_notional", np.float64),  # smallest executable size worth reporting, quote
        ("samples", np.float64),  # reported sample count (full confidence)
    ]
)


@njit(cache=True)
def _net_bps(buy_ask: float, buy_fee: float, sell_bid: float, sell_fee: float) -> float:
    return (sell_bid * (1.0 - sell_fee) / (buy_ask * (1.0 + buy_fee)) - 1.0) * 1e4


@njit(cache=True)
def arbitrage_batch_nb(
    sid: np.ndarray,
    ts: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
    bid_size: np.ndarray,
    ask_size: np.ndarray,
    group_of: np.ndarray,
    venue_of: np.ndarray,
    members: np.ndarray,
    quotes: np.ndarray,
    groups: np.ndarray,
    params: np.ndarray,
    legs: np.ndarray,
    fires: np.ndarray,
    m: int,
) -> int:
    """Update each market's quote and compare it with the fresh quotes of its group's
    markets on other venues (see the module docstring). ``legs`` gets the two legs of each
    finding at its batch row."""
    for i in range(sid.shape[0]):
        s = sid[i]
        t = ts[i]
        b, a = bid[i], ask[i]
        if not (b > 0.0 and a >= b and a < math.inf and math.isfinite(t)):
            continue
        if not (bid_size[i] > 0.0 and ask_size[i] > 0.0):
            continue
        quotes[s, Q_BID] = b
        quotes[s, Q_ASK] = a
        quotes[s, Q_BID_SIZE] = bid_size[i]
        quotes[s, Q_ASK_SIZE] = ask_size[i]
        quotes[s, Q_TS] = t
        g = group_of[s]
        p = params[s]
        best = -math.inf
        buy = -1
        sell = -1
        for k in range(members.shape[1]):
            j = members[g, k]
            if j < 0 or j == s or venue_of[j] == venue_of[s]:
                continue
            if quotes[j, Q_TS] <= 0.0 or abs(t - quotes[j, Q_TS]) > p.max_age_s:
                continue
            fee_j = params[j].fee
            here = _net_bps(a, p.fee, quotes[j, Q_BID], fee_j)  # buy here, sell there
            there = _net_bps(quotes[j, Q_ASK], fee_j, b, p.fee)  # buy there, sell here
            if here > best:
                best, buy, sell = here, s, j
            if there > best:
                best, buy, sell = there, j, s
        row = groups[g]
        if buy < 0 or best < p.edge_bps * REARM:
            row[G_LVL] = 0.0
            continue
        if best < p.edge_bps:
            continue
        size = min(quotes[buy, Q_ASK_SIZE], quotes[sell, Q_BID_SIZE])
        if size * quotes[buy, Q_ASK] < p.min_notional:
            continue
        lvl = level_nb(best / p.edge_bps)
        if lvl + 1 <= row[G_LVL]:
            continue
        row[G_LVL] = lvl + 1
        legs[i, L_BUY] = buy
        legs[i, L_SELL] = sell
        legs[i, L_BUY_PX] = quotes[buy, Q_ASK]
        legs[i, L_SELL_PX] = quotes[sell, Q_BID]
        gross = (quotes[sell, Q_BID] / quotes[buy, Q_ASK] - 1.0) * 1e4
        m = fire_nb(
            fires,
            m,
            row=i,
            code=CODE_ARBITRAGE,
            value=best,
            threshold=p.edge_bps,
            z=math.nan,
            mean=gross,
            std=math.nan,
            samples=p.samples,
            level=lvl,
            aux=size,
        )
    return m
