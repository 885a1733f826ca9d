// System view: version and uptime, feeds and per-channel health, hub and writer backlog,
// database state, process resources (with the thresholds crossed).
import { api, auth } from "../api.js";
import { el, kv, markStale, panel, Table } from "../dom.js";
import * as f from "../format.js";
import { marketState } from "./markets.js";

export function mount(root) {
  const about = el("div", { id: "about" });
  const ready = el("div", { id: "ready" });
  const res = el("div", { id: "resources" });
  const backlog = el("div", { id: "backlog" });
  const quality = el("div", { id: "feed-quality" });
  const feeds = new Table([
    { key: "exchange", label: "exchange" },
    { key: "channel", label: "channel" },
    { key: "state", label: "state", cls: (r) => "state-" + r.state },
    { key: "messages", label: "messages", num: true, fmt: (r) => f.count(r.messages) },
    { key: "messages_per_s", label: "rate", num: true, fmt: (r) => f.rate(r.messages_per_s) },
    { key: "last_message_age_s", label: "last message", num: true, fmt: (r) => (r.last_message_age_s === null ? "–" : `${f.duration(r.last_message_age_s)} ago`) },
    { key: "gaps", label: "gaps", num: true },
    { key: "stalls", label: "stalls", num: true },
  ], { empty: "no feeds", id: "feeds" });
  const markets = new Table([
    { key: "symbol", label: "market", fmt: (m) => `${m.exchange} ${m.symbol}` },
    { key: "state", label: "state", fmt: marketState, cls: (m) => "state-" + marketState(m) },
    { key: "quarantined", label: "quarantined prints", num: true, fmt: (m) => f.count(m.quarantined ?? 0) },
    { key: "last", label: "last", num: true, fmt: (m) => f.price(m.last) },
    { key: "spread_bps", label: "spread", num: true, fmt: (m) => f.bps(m.spread_bps) },
  ], { empty: "no markets", id: "symbol-health" });
  root.append(el("div", { class: "grid" },
    panel("Daemon", about), panel("Readiness", ready), panel("Process", res), panel("Backlog", backlog),
    panel("Feed quality", quality),
    el("section", { class: "panel wide" }, el("h2", { text: "Feeds" }), feeds.node),
    el("section", { class: "panel wide" }, el("h2", { text: "Per-symbol health" }), markets.node)));

  async function refresh() {
    const denied = Promise.reject(new Error("needs a token: sign in above"));
    denied.catch(() => {});
    const [st, rd, rs, mk] = await Promise.allSettled([
      auth.signedIn ? api("/api/v1/status") : denied, fetch("/ready").then((r) => r.json()),
      auth.signedIn ? api("/api/v1/system/resources") : denied, api("/api/v1/markets/overview"),
    ]);
    if (st.status === "fulfilled") {
      const s = st.value;
      about.replaceChildren(kv([
        ["version", s.version], ["uptime", f.duration(s.uptime_s)],
        ["WebSocket clients", f.count(s.websocket && s.websocket.clients)],
        ...Object.entries(s.components || {}).map(([k, v]) => [k, v, v === "available" ? "up" : "muted"]),
      ]));
      const rows = [];
      for (const [ex, h] of Object.entries(s.feeds || {})) {
        for (const [ch, c] of Object.entries(h.channels || {})) rows.push({ exchange: ex, channel: ch, ...c });
      }
      feeds.render(rows);
      quality.replaceChildren(...Object.entries(s.feeds || {}).map(([ex, h]) => {
        const q = h.quality || {};
        const list = (xs) => (xs && xs.length ? xs.join(", ") : "none");
        const via = h.collector ? ` · collector ${h.collector}, heard ${f.duration(h.age_s ?? 0)} ago` : "";
        return el("div", {}, el("h3", { text: `${ex} · ${h.state}${h.connected ? "" : " (disconnected)"}${via}` }), kv([
          ["reconnects", f.count(h.reconnects)],
          ["bad prints quarantined", f.count(q.bad_prints ?? 0), q.bad_prints ? "state-stale" : ""],
          ["bad book tops", f.count(q.bad_books ?? 0)],
          ["first prints unjudged (no book yet)", f.count(q.unjudged ?? 0)],
          ["duplicates / historical", `${f.count(q.duplicates ?? 0)} / ${f.count(q.historical ?? 0)}`],
          ["stale symbols", f.count(q.stale_symbols ?? 0), q.stale_symbols ? "state-stale" : ""],
          ["delisted", list(h.delisted), h.delisted && h.delisted.length ? "state-delisted" : ""],
          ["unknown instruments", list(h.unknown_instruments)],
        ]));
      }));
      const subs = Object.entries((s.hub && s.hub.subscribers) || {}).filter(([, v]) => v.kind === "queued");
      backlog.replaceChildren(kv(subs.map(([name, v]) => [name, `${f.count(v.depth)} queued · ${f.count(v.dropped)} dropped`])));
    } else {
      about.replaceChildren(el("span", { class: "msg err", text: st.reason.message }));
      if (!feeds.rows.length) { // never answered (no token): say why the table is empty
        feeds.empty = st.reason.message;
        feeds.render([]);
      }
    }
    if (rd.status === "fulfilled") {
      const r = rd.value;
      ready.replaceChildren(kv([["ready", r.ready ? "yes" : "no", r.ready ? "up" : "down"],
        ...Object.entries(r.checks || {}).map(([k, c]) => [k, c.ok ? "ok" : `failing: ${c.detail}`, c.ok ? "up" : "down"])]));
    }
    if (rs.status === "fulfilled") {
      const r = rs.value;
      const crossed = new Set(r.crossed || []);
      const mark = (key) => (crossed.has(key) ? "down" : "");
      res.replaceChildren(kv([
        ["CPU", `${f.amount(r.cpu_percent, 1)} % of a core (${f.duration(r.cpu_seconds)} total)`, mark("cpu_percent")],
        ["memory (RSS)", f.bytes(r.rss_bytes), mark("rss_bytes")],
        ["open files", f.count(r.open_files), mark("open_files")],
        ["free disk", `${f.bytes(r.disk_free_bytes)} of ${f.bytes(r.disk_total_bytes)} (${r.data_dir})`, mark("disk_free_bytes")],
        ["event-loop lag", f.duration(r.loop_lag_s)],
        ["thresholds crossed", crossed.size ? [...crossed].join(", ") : "none", crossed.size ? "down" : "up"],
      ]));
    } else {
      res.replaceChildren(el("span", { class: "msg err", text: rs.reason.message }));
    }
    if (mk.status === "fulfilled") markets.render(mk.value.markets);
    // what a failed request left on screen is the last answer, not the present
    const lost = auth.signedIn ? st.reason : null; // without a token there is nothing to dim
    markStale(feeds.node, lost);
    markStale(quality, lost);
    markStale(backlog, lost);
    markStale(ready, rd.reason);
    markStale(markets.node, mk.reason);
  }
  refresh();
  const timer = setInterval(refresh, 5000);
  return { unmount() { clearInterval(timer); } };
}
