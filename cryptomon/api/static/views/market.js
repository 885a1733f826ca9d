// Market view: candlestick + volume from stored candles, then live trades over the
// WebSocket; anomaly markers, fills, open orders and SL/TP levels; top of book with
// imbalance; recent anomalies and trades; the order form. At most one chart update per
// animation frame; every list is bounded.
import { api, auth, explain, live } from "../api.js";
import { el, frameThrottle, kv, markStale, panel, Table } from "../dom.js";
import * as f from "../format.js";
import { figure } from "./chart.js";
import { orderForm } from "./orderform.js";
import { positionPairs } from "./positions.js";
import { originCell } from "./trading.js";

const BUCKET_S = 60;
const MAX_CANDLES = 300;
const MAX_ANOMALIES = 300;
const MAX_TRADES = 50;

// " (N ct)": the venue's contracts beside a base-unit size or trade amount on a contract
// market; empty on spot and where they equal the base units (null from the API)
function contractsNote(amount, contracts) {
  return contracts === null || contracts === undefined || Number(contracts) === Number(amount)
    ? "" : ` (${f.amount(contracts, 4)} ct)`;
}

export function mount(root, params) {
  const exchange = params[0] || "";
  // as the API reads a symbol (btc/usdt -> BTC-USDT): the live events carry that form, and a
  // hand-typed #/market/simulator/btc-usdt or .../BTC/USDT would otherwise match none of them
  const symbol = params.slice(1).join("/").trim().toUpperCase().replaceAll("/", "-");
  if (!exchange || !symbol) {
    // a shortened address (#/market, #/market/simulator): every request would be refused
    // (422), so none is sent; the view says what address it needs
    root.append(panel("Market", el("p", { class: "msg err", id: "market-msg" },
      "This address names no market: a market's address is #/market/EXCHANGE/SYMBOL. Open one from ",
      el("a", { href: "#/markets", text: "the markets list" }), ".")));
    return { unmount() {} };
  }
  // trade amounts and book sizes are base units on every market (the feed converts a
  // derivative's contracts by its instrument spec): they are labelled with the base currency
  const base = symbol.split("-")[0] || "base";
  const state = { candles: [], anomalies: [], fills: [], orders: [], levels: [], trades: [], top: null, position: null };
  const q = `exchange=${encodeURIComponent(exchange)}&symbol=${encodeURIComponent(symbol)}`;
  const chart = el("div", { class: "chart", id: "chart" });
  const note = el("p", { class: "msg", id: "market-msg", hidden: true }); // what did not load
  const topBox = el("div", { id: "top-of-book" });
  const positionBox = el("div", { id: "market-position" });
  const anomalyTable = new Table([
    { key: "ts", label: "time", fmt: (a) => f.clock(a.ts) },
    { key: "kind", label: "kind" },
    { key: "severity", label: "severity", cls: (a) => "sev-" + a.severity },
    { key: "value", label: "value", num: true, fmt: f.anomalyValue },
  ], { max: 20, empty: "no anomalies yet", id: "market-anomalies" });
  const tradeTable = new Table([
    { key: "ts", label: "time", fmt: (t) => f.clock(t.ts) },
    { key: "side", label: "side", cls: (t) => (t.side === "buy" ? "up" : "down") },
    { key: "price", label: "price", num: true, fmt: (t) => f.price(t.price) },
    { key: "amount", label: `amount (${base})`, num: true, fmt: (t) => f.amount(t.amount) + contractsNote(t.amount, t.contracts) },
  ], { max: MAX_TRADES, id: "market-trades" });
  const ordersTable = new Table([
    { key: "client_order_id", label: "order" },
    { key: "side", label: "side" },
    { key: "type", label: "type" },
    { key: "state", label: "state" },
    { key: "price", label: "price", num: true, fmt: (o) => f.price(o.price ?? o.avg_price) },
    { key: "amount", label: "amount", num: true, fmt: (o) => f.amount(o.amount) },
    { key: "origin", label: "origin", fmt: originCell },
  ], { max: 20, empty: auth.signedIn ? "no orders" : "orders and positions need a token: sign in above", id: "market-orders" });

  const form = orderForm({ exchange, symbol, onPlaced: () => loadTrading() });
  root.append(el("div", { class: "grid" },
    el("section", { class: "panel wide" }, el("h2", { text: `${symbol} · ${exchange}` }), note, chart),
    panel("Top of book", topBox),
    auth.signedIn ? panel("Position", positionBox) : null,
    panel("Recent anomalies", anomalyTable.node),
    panel("Recent trades", el("div", { class: "scroll" }, tradeTable.node)),
    panel("Orders on this market", ordersTable.node, form ? el("h3", { text: "Manual order" }) : null, form)));

  const draw = frameThrottle(() => {
    if (!window.Plotly) return;
    const { data, layout } = figure({ ...state, now: Date.now() / 1000 });
    window.Plotly.react(chart, data, layout, { displaylogo: false, responsive: true });
    Object.assign(chart.dataset, {
      candles: state.candles.length, anomalies: data[2].x.length,
      fills: state.fills.length, orders: layout.shapes.length,
    });
  });
  const drawTables = frameThrottle(() => {
    anomalyTable.render(state.anomalies.slice(-20).reverse());
    tradeTable.render(state.trades.slice(-MAX_TRADES).reverse());
    ordersTable.render(state.orders);
    renderTop();
    renderPosition();
  });

  // a book size in base units, and the venue's contracts beside it where they differ
  function size(amount, contracts) {
    return `${f.amount(amount, 4)} ${base}${contractsNote(amount, contracts)}`;
  }

  function renderTop() {
    const t = state.top;
    if (!t) { topBox.replaceChildren(el("span", { class: "muted", text: "no book yet" })); return; }
    const imb = Number(t.imbalance);
    topBox.replaceChildren(kv([
      ["bid", `${f.price(t.bid)} × ${size(t.bid_size, t.bid_contracts)}`, "up"],
      ["ask", `${f.price(t.ask)} × ${size(t.ask_size, t.ask_contracts)}`, "down"],
      ["spread", f.bps(t.spread_bps)],
      ["imbalance", el("span", {}, `${(imb * 100).toFixed(1)} % `,
        el("span", { class: "bar", style: `width:${Math.round(Math.abs(imb) * 80)}px;background:${imb >= 0 ? "#26a69a" : "#ef5350"}` }))],
      ["updated", f.clock(t.ts)],
    ]));
  }

  function renderPosition() {
    const p = state.position;
    if (!p) { positionBox.replaceChildren(el("span", { class: "muted", text: "no open position" })); return; }
    positionBox.replaceChildren(kv(positionPairs(p)));
  }

  function onTrade(t) {
    if (t.symbol !== symbol || t.exchange !== exchange) return;
    state.trades.push(t);
    if (empty) { empty = false; note.hidden = true; } // "no candles or trades yet" no more
    if (state.trades.length > MAX_TRADES * 2) state.trades.splice(0, state.trades.length - MAX_TRADES);
    const start = Math.floor(t.ts / BUCKET_S) * BUCKET_S;
    const last = state.candles[state.candles.length - 1];
    const px = Number(t.price);
    if (last && last.open_time === start) {
      last.high = Math.max(last.high, px);
      last.low = Math.min(last.low, px);
      last.close = px;
      last.volume += Number(t.amount);
    } else if (!last || start > last.open_time) {
      state.candles.push({ open_time: start, open: px, high: px, low: px, close: px, volume: Number(t.amount) });
      if (state.candles.length > MAX_CANDLES) state.candles.shift();
    }
    draw();
    drawTables();
  }
  function onAnomaly(a) {
    if (a.symbol !== symbol || a.exchange !== exchange) return;
    state.anomalies.push(a);
    if (state.anomalies.length > MAX_ANOMALIES) state.anomalies.shift();
    draw();
    drawTables();
  }
  function onBook(b) {
    if (b.type !== "BookTop" || b.symbol !== symbol || b.exchange !== exchange) return;
    state.top = b;
    drawTables();
  }

  let tradingTimer = null;
  let reloadTimer = null;
  let reloadDelay = 1000;
  let stopped = false;
  let empty = false; // loaded with neither candles nor trades (the note says so)
  async function loadTrading() {
    if (!auth.signedIn) return;
    const sym = encodeURIComponent(symbol);
    const [orders, fills, levels, positions] = await Promise.allSettled([
      api(`/api/v1/trading/orders?symbol=${sym}&limit=50`, { quiet: true }),
      api(`/api/v1/trading/fills?symbol=${sym}&limit=200`, { quiet: true }),
      api(`/api/v1/trading/levels?symbol=${sym}`, { quiet: true }),
      api("/api/v1/trading/positions", { quiet: true }),
    ]);
    if (positions.status === "fulfilled") {
      state.position = positions.value.positions.find((p) =>
        p.exchange === exchange && p.symbol === symbol && Number(p.amount) !== 0) || null;
    }
    if (orders.status === "fulfilled") {
      state.orders = orders.value.orders.filter((o) => o.exchange === exchange);
    }
    if (fills.status === "fulfilled") state.fills = fills.value.fills.filter((x) => x.exchange === exchange);
    if (levels.status === "fulfilled") state.levels = levels.value.levels.filter((x) => x.exchange === exchange);
    draw();
    drawTables();
  }
  function onOrder() { // debounce: a burst of order updates reloads once
    clearTimeout(tradingTimer);
    tradingTimer = setTimeout(loadTrading, 300);
  }

  async function load() {
    const [candles, anomalies, trades, book] = await Promise.allSettled([
      api(`/api/v1/market/history?${q}&interval=1m&limit=${MAX_CANDLES}`),
      api(`/api/v1/anomalies?${q}&limit=200`),
      api(`/api/v1/market/trades?${q}&limit=${MAX_TRADES}`),
      api(`/api/v1/market/orderbook?${q}&depth=5`),
    ]);
    if (candles.status === "fulfilled") {
      state.candles = candles.value.candles.map((c) => ({ ...c })).sort((a, b) => a.open_time - b.open_time);
    }
    if (anomalies.status === "fulfilled") state.anomalies = anomalies.value.items.slice().reverse();
    if (trades.status === "fulfilled") state.trades = trades.value.trades;
    if (book.status === "fulfilled" && book.value.top) state.top = book.value.top;
    // a request that failed, or a market with nothing at all (a mistyped address), is said
    // above the chart instead of an empty chart of January 2000 (a book not there yet is not
    // an error: the top-of-book panel says "no book yet")
    const failed = [["candles", candles], ["anomalies", anomalies], ["trades", trades], ["order book", book]]
      .filter(([what, r]) => r.status === "rejected" && !(what === "order book" && r.reason.status === 404))
      .map(([what, r]) => `${what}: ${r.reason.status ? explain(r.reason.status, r.reason.message) : r.reason.message}`);
    const nothing = empty = !failed.length && candles.status === "fulfilled" && !state.candles.length &&
      trades.status === "fulfilled" && !state.trades.length;
    note.hidden = !failed.length && !nothing;
    note.className = failed.length ? "msg err" : "msg muted";
    note.textContent = failed.length
      ? `Not loaded: ${failed.join("; ")}`
      : nothing ? `No candles or trades for ${exchange} ${symbol} yet: the chart fills from live trades.` : "";
    draw();
    drawTables();
    // what failed (429 too many requests in progress from this address, the daemon away) is
    // asked again with backoff: the view would otherwise stay without its candles for good
    clearTimeout(reloadTimer);
    const retryable = [candles, anomalies, trades, book].some((r) => r.status === "rejected" &&
      (!r.reason.status || r.reason.status === 429 || r.reason.status >= 500));
    if (retryable && !stopped) {
      const wait = reloadDelay;
      reloadDelay = Math.min(reloadDelay * 2, 10000);
      note.textContent += ` Retrying in ${Math.round(wait / 1000)} s.`;
      reloadTimer = setTimeout(load, wait);
    } else {
      reloadDelay = 1000;
    }
    await loadTrading();
  }

  const filter = { symbols: [symbol], exchanges: [exchange] };
  const offs = [
    live.on("trades", onTrade, filter),
    live.on("anomalies", onAnomaly, filter),
    live.on("book", onBook, filter),
  ];
  if (auth.signedIn) offs.push(live.on("orders", onOrder, filter));
  // what the socket feeds is out of date while it is down (the daemon away): dimmed, as the
  // polled tables are after a failed refresh, not shown as the present book
  offs.push(live.watch((up) => {
    const err = up ? null : new Error("live updates lost, reconnecting");
    for (const node of [topBox, tradeTable.node, chart]) markStale(node, err);
  }));
  load();
  const poll = setInterval(loadTrading, 5000);
  return {
    unmount() {
      offs.forEach((off) => off());
      clearInterval(poll);
      clearTimeout(tradingTimer);
      clearTimeout(reloadTimer);
      stopped = true;
      if (window.Plotly) window.Plotly.purge(chart);
    },
  };
}
