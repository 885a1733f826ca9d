// Backtests view: stored runs and their reports (GET /api/v1/backtests, .../{id}/report).
// A daemon without stored backtests answers 404: the view says so instead of failing.
// A sweep (`backtest --sweep`) is listed by its best variant (variants=false); "variants"
// lists all of them, best first, with the config keys each set (GET ...?sweep=ID). A run
// without a report (a sweep's variants have none) shows the command that runs it again.
import { api, auth, explain } from "../api.js";
import { el, Table } from "../dom.js";
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
  // the run's warnings (a paper tick above the market's prices, ...): marked beside its PnL,
  // their text on hover, so a broken run (a sweep's "best" with no trades) is not mistaken
  // for a plain one
  const pnlCell = (r) => {
    const warnings = sum(r).warnings || [];
    if (!warnings.length) return pnl(r);
    return el("span", {}, `${pnl(r)} `, el("span", { class: "warn", title: warnings.join("\n"),
      text: warnings.length > 1 ? `⚠ ${warnings.length} warnings` : "⚠ warning" }));
  };
  // what the run's signals came to, as the command's summary prints it: the orders, the
  // refusals and why the engine made no order of the rest (summary.not_acted_by_reason, the
  // keys of cryptomon.trading.entries.NOT_ACTED; a run stored before it has none)
  const signalsText = (r) => {
    const s = sum(r);
    if (!Number.isFinite(s.signals)) return "";
    const parts = [];
    if (s.signals_refused) parts.push(`${f.count(s.signals_refused)} refused`);
    if (s.signals_not_acted) {
      const why = Object.entries(s.not_acted_by_reason || {}).map(([k, n]) => `${k} ${f.count(n)}`).join(", ");
      parts.push(`${f.count(s.signals_not_acted)} not acted on${why ? ` (${why})` : ""}`);
    }
    return `Run ${r.id}: signals ${f.count(s.signals)} → ${f.count(s.signals_ordered)} orders`
      + (parts.length ? `: ${parts.join(", ")}` : "");
  };
  const signals = el("p", { class: "muted", id: "backtest-signals" });
  // the config keys a run set (a sweep variant's overrides, or --set's), as KEY=VALUE
  const overrides = (r) => Object.entries(r.overrides || {}).map(([k, v]) => `${k}=${v}`).join(" ");
  const params = (r) => {
    const set = overrides(r);
    if (r.sweep_id == null) return set || el("span", { class: "muted", text: "as configured" });
    const button = el("button", { type: "button", class: "variants", text: "variants",
      title: "list every variant of the sweep, best first",
      onclick: (ev) => { ev.stopPropagation(); openSweep(r.sweep_id, r.sweep_metric); } });
    return el("span", {}, el("span", { class: "muted", text: `best of sweep ${r.sweep_id} (by ${r.sweep_metric}) ` }),
      button, set ? ` ${set}` : "");
  };
  const runs = new Table([
    { key: "id", label: "run" },
    { key: "created", label: "created", fmt: (r) => f.time(Date.parse(r.created_at) / 1000) },
    { key: "symbol", label: "market", fmt: (r) => (r.symbols || []).join(", ") || "–" },
    { key: "net_pnl", label: "net PnL", num: true, fmt: pnlCell },
    { key: "trades", label: "trades", num: true, fmt: (r) => f.count(sum(r).trades) },
    { key: "params", label: "parameters", fmt: params },
  ], { max: Infinity, id: "backtest-runs", onRow: (r) => open(r),
    empty: "no stored backtests: crypto-monitor backtest --config FILE stores each run here" });
  // the API answers a page of runs (newest first) and where the next one starts: older
  // pages are appended on demand
  const more = el("button", { type: "button", id: "backtests-more", text: "Older runs", hidden: true,
    onclick: () => loadPage() });
  // one sweep's variants, ranked: shown when its "variants" button is pressed
  const sweepTitle = el("h2", { text: "Sweep" });
  const variants = new Table([
    { key: "sweep_rank", label: "rank" },
    { key: "id", label: "run" },
    { key: "params", label: "parameters", fmt: (r) => overrides(r) || "–" },
    { key: "net_pnl", label: "net PnL", num: true, fmt: pnlCell },
    { key: "trades", label: "trades", num: true, fmt: (r) => f.count(sum(r).trades) },
    { key: "sharpe", label: "Sharpe", num: true, fmt: (r) => Number.isFinite(sum(r).sharpe) ? sum(r).sharpe.toFixed(2) : "–" },
    { key: "dd", label: "max drawdown", num: true, fmt: (r) => Number.isFinite(sum(r).max_drawdown_pct) ? `${sum(r).max_drawdown_pct.toFixed(2)} %` : "–" },
  ], { max: Infinity, empty: "no variants", id: "backtest-sweep-runs", onRow: (r) => open(r) });
  const sweepMore = el("button", { type: "button", id: "backtest-sweep-more", text: "More variants", hidden: true,
    onclick: () => loadSweep() });
  const sweepMsg = el("p", { class: "muted", id: "backtest-sweep-msg" });
  const sweepPanel = el("section", { class: "panel wide", id: "backtest-sweep", hidden: true },
    sweepTitle, sweepMsg, variants.node, sweepMore);
  root.append(el("div", { class: "grid" },
    el("section", { class: "panel wide" }, el("h2", { text: "Backtests" }), msg, runs.node, more),
    sweepPanel,
    el("section", { class: "panel wide" }, el("h2", { text: "Report" }), signals, report)));

  // the object URL of the report offered for download: let go (the blob freed) when another
  // report replaces it and when the view is left
  let blobUrl = null;
  let left = false; // the view was left: a report still loading is dropped
  function letGo() {
    if (blobUrl !== null) URL.revokeObjectURL(blobUrl);
    blobUrl = null;
  }
  let opening = 0; // the last report asked for: an earlier one's late answer is dropped
  async function open(run) {
    const id = run.id;
    const seq = ++opening;
    letGo();
    signals.textContent = signalsText(run);
    report.replaceChildren(el("span", { class: "muted", text: "loading…" }));
    try {
      if (!run.has_report) {
        // none stored: the run's own command (params.command) makes one
        const detail = await api(`/api/v1/backtests/${encodeURIComponent(id)}`, { quiet: true });
        if (seq !== opening || left) return;
        const command = `${detail.params?.command || "crypto-monitor backtest"} --report backtest-${id}.html`;
        report.replaceChildren(
          el("p", { text: `Run ${id} has no stored report${run.sweep_id != null ? " (a sweep stores none)" : ""}; this command runs it again and writes one:` }),
          el("pre", { class: "command" }, el("code", { id: "backtest-command", text: command })));
        return;
      }
      // the report needs the token (a header), so it is fetched, then offered as a file
      const url = `/api/v1/backtests/${encodeURIComponent(id)}/report`;
      const headers = auth.token ? { Authorization: "Bearer " + auth.token } : {};
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
  // the sweep shown, its variants so far and the rank the next page starts after
  let sweep = null;
  let sweepShown = [];
  let afterRank = null;
  let sweepSeq = 0; // the last sweep asked for: an earlier one's late page is dropped
  function openSweep(id, metric) {
    sweep = id;
    sweepShown = [];
    afterRank = null;
    sweepTitle.textContent = `Sweep ${id}: variants ranked by ${metric}`;
    sweepPanel.hidden = false;
    variants.render([]);
    loadSweep();
  }
  async function loadSweep() {
    const seq = ++sweepSeq;
    sweepMore.disabled = true;
    try {
      const q = afterRank === null ? "" : `&after_rank=${encodeURIComponent(afterRank)}`;
      const out = await api(`/api/v1/backtests?sweep=${encodeURIComponent(sweep)}&limit=${PAGE}${q}`, { quiet: true });
      if (seq !== sweepSeq || left) return;
      sweepShown = [...sweepShown, ...(out.items || [])];
      afterRank = out.next_after_rank ?? null;
      variants.render(sweepShown);
      sweepMore.hidden = afterRank === null;
      sweepMsg.textContent = `${sweepShown.length}${afterRank === null ? "" : " best"} variant(s); click one for its report or the command that makes one`;
    } catch (err) {
      if (seq !== sweepSeq || left) return;
      sweepMsg.textContent = `Not loaded: ${err.message}`;
    } finally {
      sweepMore.disabled = false;
    }
  }
  let shown = [];
  let before = null; // the next page's start (null: the first page, or none left)
  async function loadPage() {
    more.disabled = true;
    try {
      const q = before === null ? "" : `&before=${encodeURIComponent(before)}`;
      const out = await api(`/api/v1/backtests?variants=false&limit=${PAGE}${q}`, { quiet: true });
      shown = [...shown, ...(out.items || [])];
      before = out.next_before ?? null;
      runs.render(shown);
      more.hidden = before === null;
      const grouped = shown.some((r) => r.sweep_id != null) ? " (a sweep as its best variant)" : "";
      msg.textContent = before === null
        ? `${shown.length} stored run(s)${grouped}; click one to open its report`
        : `the newest ${shown.length} stored runs${grouped}; click one to open its report, "Older runs" for more`;
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
