// Trading view: positions, orders (cancel), fills, equity curve and drawdown, risk state,
// the kill switch and the manual order form. Controls only for tokens that may use them.
import { api, auth, live } from "../api.js";
import { confirmAction, el, frameThrottle, kv, markStale, message, panel, Table } from "../dom.js";
import * as f from "../format.js";
import { orderForm } from "./orderform.js";
import { positionColumns } from "./positions.js";

// The origin in words; a close the engine did not send (liquidation, auto-deleveraging,
// settlement, a venue order) also shows the venue's or the paper broker's reason, which says
// at what price and why the position was closed.
export function originCell(o) {
  const label = f.origin(o);
  if (!f.FORCED.has(o.origin)) return label;
  return el("span", { class: "forced", title: o.reason || undefined }, el("strong", { class: "down", text: label }),
    o.reason ? el("span", { class: "reason", text: o.reason }) : null);
}

// msg: where a refused cancel says why (under the orders table, like the page's other
// refusals; not a blocking dialog)
function cancelButton(order, after, msg) {
  if (!auth.can("trade") || ["filled", "canceled", "rejected", "expired", "cancel_pending"].includes(order.state)) return "";
  return el("button", { type: "button", class: "cancel", text: "Cancel", onclick: async (ev) => {
    ev.stopPropagation();
    // one cancel per click: a second click (a double click) would be refused as "already
    // canceled" over a cancel that worked; the table's refresh replaces the button
    const button = ev.currentTarget;
    if (button.disabled) return;
    button.disabled = true;
    button.textContent = "Canceling…";
    try {
      await api(`/api/v1/trading/orders/${encodeURIComponent(order.client_order_id)}`, { method: "DELETE" });
      msg.textContent = ""; // an earlier refusal no longer stands under a cancel that worked
    } catch (err) {
      message(msg, `Cancel refused: ${order.client_order_id}: ${err.message}`);
    }
    after();
  } });
}

function killSwitch(status, after) {
  const msg = el("div", { class: "msg", id: "kill-msg" });
  async function act(action, flatten, text) {
    if (!(await confirmAction(text))) return;
    try {
      const out = await api("/api/v1/trading/kill-switch", { method: "POST", body: { action, flatten } });
      const closing = out.flatten || [];
      message(msg, `Kill switch ${action}: risk state ${out.state}` +
        (out.canceled.length ? `, ${out.canceled.length} order(s) canceled` : "") +
        (flatten ? `, ${closing.length} position(s) being closed` : ""), true);
    } catch (err) {
      message(msg, `Kill switch ${action} refused: ${err.message}`);
    }
    after();
  }
  const buttons = [
    el("button", { type: "button", class: "danger", id: "kill-engage", text: "Engage (halt)",
      onclick: () => act("engage", false, "Halt trading and cancel every open order?") }),
    el("button", { type: "button", class: "danger", id: "kill-flatten", text: "Engage + flatten",
      onclick: () => act("engage", true, "Halt trading, cancel every open order and close every position?") }),
  ];
  if (auth.can("admin")) {
    buttons.push(el("button", { type: "button", id: "kill-release", text: "Release",
      onclick: () => act("release", null, "Resume trading?") }));
  }
  return el("div", { id: "kill-switch" }, el("h3", { text: "Kill switch" }), el("div", { class: "inline" }, buttons), msg, status);
}

export function mount(root) {
  if (!auth.signedIn) {
    root.append(panel("Trading", el("p", { class: "msg err", id: "needs-token",
      text: "Positions, orders and the kill switch need a token: sign in above." })));
    return { unmount() {} };
  }
  const riskBox = el("div", { id: "risk-state" });
  const statsBox = el("div", { id: "trading-stats" });
  const equity = el("div", { class: "chart small", id: "equity-chart" });
  const refreshSoon = () => { clearTimeout(timerSoon); timerSoon = setTimeout(refresh, 250); };
  let timerSoon = null;
  const positions = new Table(positionColumns(), { empty: "no open positions", id: "positions" });
  const ordersMsg = el("div", { class: "msg", id: "orders-msg" }); // a refused cancel's reason
  const orders = new Table([
    { key: "created", label: "time", fmt: (o) => f.clock(o.created) },
    { key: "client_order_id", label: "order" },
    { key: "symbol", label: "market", fmt: (o) => `${o.exchange} ${o.symbol}` },
    { key: "side", label: "side", cls: (o) => (o.side === "buy" ? "up" : "down") },
    { key: "type", label: "type" },
    { key: "state", label: "state" },
    { key: "amount", label: "amount", num: true, fmt: (o) => `${f.amount(o.filled)} / ${f.amount(o.amount)}` },
    { key: "price", label: "price", num: true, fmt: (o) => f.price(o.price ?? o.avg_price) },
    { key: "origin", label: "origin", fmt: originCell },
    { key: "cancel", label: "", fmt: (o) => cancelButton(o, refreshSoon, ordersMsg) },
  ], { max: 100, empty: "no orders", id: "orders" });
  const fills = new Table([
    { key: "ts", label: "time", fmt: (x) => f.time(x.ts) },
    // the order this fill executes, as the orders table names it (the venue's id on hover)
    { key: "client_order_id", label: "order", fmt: (x) => el("span", { class: "order-id", text: x.client_order_id,
      title: x.exchange_order_id ? `venue order ${x.exchange_order_id}` : undefined }) },
    { key: "symbol", label: "market", fmt: (x) => `${x.exchange} ${x.symbol}` },
    { key: "side", label: "side", cls: (x) => (x.side === "buy" ? "up" : "down") },
    { key: "amount", label: "amount", num: true, fmt: (x) => f.amount(x.amount) },
    { key: "price", label: "price", num: true, fmt: (x) => f.price(x.price) },
    { key: "fee", label: "fee", num: true, fmt: (x) => `${f.amount(x.fee, 6)} ${x.fee_currency}` },
  ], { max: 100, empty: "no fills", id: "fills" });
  const form = orderForm({ onPlaced: refreshSoon });
  const controls = auth.can("trade") ? killSwitch(null, refreshSoon) : null;
  root.append(el("div", { class: "grid" },
    panel("Risk", riskBox, controls),
    panel("Performance", statsBox),
    el("section", { class: "panel wide" }, el("h2", { text: "Equity and drawdown" }), equity),
    el("section", { class: "panel wide" }, el("h2", { text: "Positions" }), el("div", { class: "hscroll" }, positions.node)),
    el("section", { class: "panel wide" }, el("h2", { text: "Orders" }), el("div", { class: "scroll" }, orders.node), ordersMsg,
      form ? el("h3", { text: "Manual order" }) : null, form),
    el("section", { class: "panel wide" }, el("h2", { text: "Fills" }), el("div", { class: "scroll" }, fills.node))));

  let curve = [];
  let currency = "";
  const drawEquity = frameThrottle(() => {
    if (!window.Plotly) return;
    const x = curve.map((p) => f.time(p.ts));
    // the API gives the drawdown as a fall below the peak (5 = 5 % under it): drawn below
    // zero, as the backtest report draws it, on an axis ending at 0 (a curve with no fall
    // would otherwise be centred on 0, its axis half positive)
    const dd = curve.map((p) => (Number(p.drawdown_pct) > 0 ? -Number(p.drawdown_pct) : 0));
    const worst = Math.min(0, ...dd);
    const unit = currency ? `equity (${currency})` : "equity";
    window.Plotly.react(equity, [
      { type: "scatter", mode: "lines", name: unit, x, y: curve.map((p) => Number(p.equity)), line: { color: "#4c9aff" } },
      { type: "scatter", mode: "lines", name: "drawdown (%)", x, y: dd, yaxis: "y2",
        fill: "tozeroy", line: { color: "#ef5350" } },
    ], {
      paper_bgcolor: "#171d24", plot_bgcolor: "#171d24", font: { color: "#d8dee6", size: 11 },
      // the legend above the plot: below it, it covered the time axis' labels
      margin: { l: 70, r: 80, t: 30, b: 30 }, legend: { orientation: "h", x: 0, y: 1, yanchor: "bottom" },
      uirevision: "keep",
      // the money as written elsewhere (9,999.942), not SI-shortened (9.999942k)
      yaxis: { gridcolor: "#2a323c", title: { text: unit }, tickformat: ",~f" },
      // tickmode "auto": an overlaying axis defaults to "sync" (ticks at the equity axis'
      // gridlines), which labels the drawdown -0.000535, -0.00548, ... instead of 0, -0.005, ...
      yaxis2: { overlaying: "y", side: "right", title: { text: "drawdown (%)" }, showgrid: false, tickformat: ".3~r", tickmode: "auto",
        range: [worst < 0 ? worst * 1.1 : -1, 0], autorange: false },
      xaxis: { gridcolor: "#2a323c", type: "date" },
    }, { displaylogo: false, responsive: true });
  });

  async function refresh() {
    const [st, pos, ord, fil, eq] = await Promise.allSettled([
      api("/api/v1/trading/stats"), api("/api/v1/trading/positions"),
      api("/api/v1/trading/orders?limit=100"), api("/api/v1/trading/fills?limit=100"),
      api("/api/v1/trading/equity?limit=1000"),
    ]);
    if (st.status === "fulfilled") {
      const s = st.value;
      currency = s.stats.quote_currency || currency;
      riskBox.replaceChildren(kv([
        ["risk state", s.risk_state, "state-" + s.risk_state],
        ["reason", s.stats.risk_reason || "–"],
        ["reconciled", s.reconciled ? "yes" : "no"],
        ["open orders", f.count(s.stats.open_orders)],
      ]));
      riskBox.dataset.state = s.risk_state;
      const ccy = currency || "USDT"; // the account's currency, as the API names it
      statsBox.replaceChildren(kv([
        ["equity", f.money(s.stats.equity, ccy)],
        // net_pnl sums closed trades; what the open positions would make is beside it (an
        // equity up 50 with a "net PnL 0.00" read as a contradiction)
        ["net PnL (closed trades)", f.signedMoney(s.stats.net_pnl ?? s.stats.realized_pnl, ccy), f.sign(s.stats.net_pnl ?? s.stats.realized_pnl)],
        ["unrealized PnL", f.signedMoney(s.stats.unrealized_pnl, ccy), f.sign(s.stats.unrealized_pnl)],
        ["trades", `${f.count(s.stats.trades)} (${f.count(s.stats.wins)} won)`],
        ["win rate", s.stats.win_rate === null || s.stats.win_rate === undefined ? "–" : f.pct(Number(s.stats.win_rate) * 100).replace("+", "")],
        ["max drawdown", s.stats.max_drawdown === undefined ? "–" : f.pct(Number(s.stats.max_drawdown) * 100).replace("+", "")],
        ["fees", f.money(s.stats.fees, ccy)],
      ]));
    } else {
      riskBox.replaceChildren(el("span", { class: "msg err", text: st.reason.message }));
    }
    markStale(statsBox, st.reason);
    markStale(positions.node, pos.reason);
    markStale(orders.node, ord.reason);
    markStale(fills.node, fil.reason);
    markStale(equity, eq.reason);
    if (pos.status === "fulfilled") positions.render(pos.value.positions.filter((p) => Number(p.amount) !== 0));
    if (ord.status === "fulfilled") orders.render(ord.value.orders);
    if (fil.status === "fulfilled") fills.render(fil.value.fills);
    if (eq.status === "fulfilled") {
      curve = eq.value.points;
      const s = st.status === "fulfilled" ? st.value.stats : null;
      if (s && s.equity !== undefined) { // the live point after the last stored snapshot
        const peak = Math.max(Number(s.equity), ...curve.map((p) => Number(p.equity)));
        const dd = peak > 0 ? ((peak - Number(s.equity)) / peak) * 100 : 0;
        curve = [...curve, { ts: Date.now() / 1000, equity: s.equity, drawdown_pct: dd }];
      }
      drawEquity();
    }
  }
  refresh();
  const timer = setInterval(refresh, 4000);
  const offs = [live.on("orders", refreshSoon), live.on("positions", refreshSoon)];
  return {
    unmount() {
      clearInterval(timer);
      clearTimeout(timerSoon);
      offs.forEach((off) => off());
      if (window.Plotly) window.Plotly.purge(equity);
    },
  };
}
