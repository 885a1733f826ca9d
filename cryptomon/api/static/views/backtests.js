// Backtests view: stored runs and their reports (GET /api/v1/backtests, .../{id}/report).
// A daemon without stored backtests answers 404: the view says so instead of failing.
import { api, auth, explain } from "../api.js";
import { el, panel, Table } from "../dom.js";
import * as f from "../format.js";

const PAGE = 50; // runs asked for at a time

export function mount(root) {
  const msg = el("p", { class: "muted", id: "backtests-msg" });
  const report = el("div", { id: "backtest-report" });
  // a run as GET /api/v1/backtests lists it: created_at (ISO 8601), symbols, and the
  // statistics in summary (pnl and pnl_pct in the run's quote currency, trades)
  const sum = (r) => r.summary || {};
  const pnl = (r) => {
    const { pnl: v, pnl_pct: p, quote } = sum(r);
    if (!Number.isFinite(v)) return "–";
    const pct = Number.isFinite(p) ? ` (${f.pct(p)})` : "";
    return `${v > 0 ? "+" : ""}${f.amount(v, 8)} ${quote || ""}`.trim() + pct;
  };
  const runs = new Table([
    { key: "id", label: "run" },
    { key: "created", label: "created", fmt: (r) => f.time(Date.parse(r.created_at) / 1000) },
    { key: "symbol", label: "market", fmt: (r) => (r.symbols || []).join(", ") || "–" },
    { key: "net_pnl", label: "net PnL", num: true, fmt: pnl },
    { key: "trades", label: "trades", num: true, fmt: (r) => f.count(sum(r).trades) },
  ], { max: Infinity, empty: "no stored backtests", id: "backtest-runs", onRow: (r) => open(r.id) });
  // the API answers a page of runs (newest first) and where the next one starts: older
  // pages are appended on demand
  const more = el("button", { type: "button", id: "backtests-more", text: "Older runs", hidden: true,
    onclick: () => loadPage() });
  root.append(el("div", { class: "grid" },
    el("section", { class: "panel wide" }, el("h2", { text: "Backtests" }), msg, runs.node, more),
    el("section", { class: "panel wide" }, el("h2", { text: "Report" }), report)));

  // the object URL of the report offered for download: let go (the blob freed) when another
  // report replaces it and when the view is left
  let blobUrl = null;
  let left = false; // the view was left: a report still loading is dropped
  function letGo() {
    if (blobUrl !== null) URL.revokeObjectURL(blobUrl);
    blobUrl = null;
  }
  let opening = 0; // the last report asked for: an earlier one's late answer is dropped
  async function open(id) {
    // the report needs the token (a header), so it is fetched, then offered as a file
    const url = `/api/v1/backtests/${encodeURIComponent(id)}/report`;
    const seq = ++opening;
    letGo();
    report.replaceChildren(el("span", { class: "muted", text: "loading…" }));
    const headers = auth.token ? { Authorization: "Bearer " + auth.token } : {};
    try {
      const resp = await fetch(url, { headers });
      if (!resp.ok) throw new Error(explain(resp.status, resp.status === 404 ? "no report for this run" : resp.statusText));
      const blob = await resp.blob();
      if (seq !== opening || left) return;
      blobUrl = URL.createObjectURL(blob);
      const link = el("a", { href: blobUrl, download: `backtest-${id}.html`, text: "Download the report" });
      report.replaceChildren(el("p", {}, link, el("span", { class: "muted", text: ` (${f.bytes(blob.size)}; interactive charts open in the browser)` })));
    } catch (err) {
      if (seq !== opening || left) return;
      report.replaceChildren(el("span", { class: "msg err", text: err.message }));
    }
  }
  let shown = [];
  let before = null; // the next page's start (null: the first page, or none left)
  async function loadPage() {
    more.disabled = true;
    try {
      const q = before === null ? "" : `&before=${encodeURIComponent(before)}`;
      const out = await api(`/api/v1/backtests?limit=${PAGE}${q}`, { quiet: true });
      shown = [...shown, ...(out.items || [])];
      before = out.next_before ?? null;
      runs.render(shown);
      more.hidden = before === null;
      msg.textContent = before === null
        ? `${shown.length} stored run(s); click one to open its report`
        : `the newest ${shown.length} stored runs; click one to open its report, "Older runs" for more`;
    } catch (err) {
      if (!shown.length) runs.render([]);
      msg.textContent = `Not loaded: ${err.message}` + (shown.length ? " (the runs above are listed)" : "");
    } finally {
      more.disabled = false;
    }
  }
  (async () => {
    try {
      // ask the API's own document first: no request to a route this daemon lacks
      const doc = await api("/api/v1/openapi.json", { quiet: true });
      if (!doc.paths || !doc.paths["/api/v1/backtests"]) throw Object.assign(new Error("absent"), { status: 404 });
      if (!auth.signedIn) throw new Error("Stored backtests need a token: sign in above.");
    } catch (err) {
      runs.render([]);
      msg.textContent = err.status === 404
        ? "This daemon stores no backtests yet (GET /api/v1/backtests answers 404). Run `crypto-monitor backtest` to make one."
        : err.message;
      return;
    }
    await loadPage();
  })();
  return { unmount() { left = true; letGo(); } };
}
