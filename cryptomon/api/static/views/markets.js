// Markets overview: one sortable row per exchange/symbol; a click opens the market.
import { api } from "../api.js";
import { el, markStale, panel, Table } from "../dom.js";
import * as f from "../format.js";

const SEVS = ["critical", "high", "medium", "low"];

function anomalyCell(row) {
  const parts = SEVS.filter((s) => row.anomalies[s]).map((s) =>
    el("span", { class: "sev-" + s, text: `${row.anomalies[s]} ${s}` }));
  if (!parts.length) return el("span", { class: "muted", text: "none" });
  return el("span", {}, parts.flatMap((p, i) => (i ? [" · ", p] : [p])));
}

// The market's own feed state (live / stale / delisted); the exchange feed's state when
// that one is not live (e.g. "reconnecting"), as a hint after it.
export function marketState(row) {
  return row.state || (row.stale ? "stale" : "live");
}

function feedCell(row) {
  const state = marketState(row);
  const feed = row.feed_state && row.feed_state !== "live" && state !== "delisted" ? ` (feed ${row.feed_state})` : "";
  return el("span", { class: "state-" + state, title: `exchange feed: ${row.feed_state || "unknown"}` }, state, feed);
}

function quarantineCell(row) {
  const n = Number(row.quarantined) || 0;
  return el("span", { class: n ? "state-stale" : "muted", title: "trades quarantined as bad prints since the feed started" }, f.count(n));
}

export function mount(root) {
  const table = new Table([
    { key: "exchange", label: "exchange" },
    { key: "symbol", label: "symbol" },
    { key: "last", label: "last", num: true, fmt: (r) => f.price(r.last) },
    { key: "change_pct", label: "change", num: true, fmt: (r) => f.pct(r.change_pct), cls: (r) => f.sign(r.change_pct) },
    { key: "spread_bps", label: "spread", num: true, fmt: (r) => f.bps(r.spread_bps) },
    // base units (the API's "base volume over the lookback"): named, as they differ by market
    { key: "volume", label: "volume", num: true, fmt: (r) => {
      const v = f.amount(r.volume, 3);
      return v === "–" ? v : `${v} ${String(r.symbol).split("-")[0]}`;
    } },
    { key: "feed", label: "feed", fmt: feedCell },
    { key: "quarantined", label: "quarantined", num: true, fmt: quarantineCell },
    { key: "anomaly_total", label: "anomalies (1 h)", fmt: anomalyCell },
  ], { sortable: true, id: "markets-table", empty: "no market data yet", onRow: (r) => {
    location.hash = `#/market/${encodeURIComponent(r.exchange)}/${encodeURIComponent(r.symbol)}`;
  } });
  const note = el("p", { class: "muted" });
  root.append(panel("Markets", note, table.node));
  let lookback = 3600;
  async function refresh() {
    try {
      const out = await api(`/api/v1/markets/overview?lookback_s=${lookback}`);
      lookback = out.lookback_s;
      note.textContent = `change and volume over the last ${f.duration(lookback)}; click a row for its chart`;
      table.render(out.markets.map((m) => ({
        ...m,
        feed: marketState(m),
        anomaly_total: Object.values(m.anomalies).reduce((a, b) => a + b, 0),
      })));
      markStale(table.node, null);
    } catch (err) {
      note.textContent = `Not updated: ${err.message}; the rows below are the last answer.`;
      markStale(table.node, err);
    }
  }
  refresh();
  const timer = setInterval(refresh, 3000);
  return { unmount() { clearInterval(timer); } };
}
