// Alerts view: stored anomalies and the notification history, each with filters.
import { api, auth } from "../api.js";
import { el, markStale, panel, Table } from "../dom.js";
import * as f from "../format.js";

const KINDS = ["", "volume", "volume_imbalance", "price_change", "volatility", "ma_deviation", "book_imbalance",
  "spread", "whale", "whale_burst", "divergence", "liquidations", "funding"];
const SEVERITIES = ["", "low", "medium", "high", "critical"];
const STATUSES = ["", "sent", "failed", "suppressed", "digested"];
const PAGE = 200; // rows asked for at a time

function select(name, values, label) {
  return el("label", {}, label, el("select", { name }, values.map((v) => el("option", { value: v, text: v || "any" }))));
}

function filterForm(id, fields, onChange) {
  const form = el("form", { class: "inline", id }, fields);
  form.addEventListener("change", onChange);
  form.addEventListener("submit", (ev) => { ev.preventDefault(); onChange(); });
  return form;
}

function params(form) {
  const out = new URLSearchParams();
  for (const [k, v] of new FormData(form)) if (String(v).trim()) out.set(k, String(v).trim());
  return out;
}

export function mount(root) {
  const anomalies = new Table([
    { key: "ts", label: "time", fmt: (a) => f.time(a.ts) },
    { key: "symbol", label: "market", fmt: (a) => `${a.exchange} ${a.symbol}` },
    { key: "kind", label: "kind" },
    { key: "severity", label: "severity", cls: (a) => "sev-" + a.severity },
    { key: "value", label: "value", num: true, fmt: f.anomalyValue },
    { key: "confidence", label: "confidence", num: true, fmt: (a) => (a.confidence === null ? "–" : `${Math.round(a.confidence)} %`) }, // 0-100 already
    { key: "reasons", label: "reasons", fmt: (a) => (a.reasons || []).join("; ") || "–" },
  ], { max: Infinity, empty: "no anomalies match", id: "alerts-anomalies" }); // pages: "Older"
  const history = new Table([
    { key: "ts", label: "time", fmt: (n) => f.time(n.ts) },
    { key: "channel", label: "channel" },
    { key: "status", label: "status", cls: (n) => (n.status === "failed" ? "down" : n.status === "sent" ? "up" : "muted") },
    { key: "event_type", label: "event" },
    { key: "title", label: "title" },
    { key: "attempts", label: "attempts", num: true },
    { key: "error", label: "error" },
  ], { max: PAGE, empty: "no notifications match", id: "alerts-history" });
  const aMsg = el("div", { class: "msg" });
  const hMsg = el("div", { class: "msg" });
  const aMore = el("button", { type: "button", id: "anomalies-more", text: "Older", hidden: true,
    title: "list the next page of older anomalies", onclick: () => loadOlder() });
  const aForm = filterForm("anomaly-filters", [
    select("kind", KINDS, "kind"), select("min_severity", SEVERITIES, "min severity"),
    el("label", {}, "symbol", el("input", { name: "symbol", size: 11, placeholder: "BTC-USDT" })),
    el("label", {}, "exchange", el("input", { name: "exchange", size: 10 })),
    el("button", { type: "submit", text: "Apply" }),
  ], () => loadAnomalies());
  const hForm = filterForm("history-filters", [
    el("label", {}, "channel", el("input", { name: "channel", size: 10 })),
    select("status", STATUSES, "status"),
    el("button", { type: "submit", text: "Apply" }),
  ], () => loadHistory());
  root.append(el("div", { class: "grid" },
    el("section", { class: "panel wide" }, el("h2", { text: "Anomalies" }), aForm, aMsg, el("div", { class: "scroll" }, anomalies.node), aMore),
    el("section", { class: "panel wide" }, el("h2", { text: "Notifications" }), hForm, hMsg, el("div", { class: "scroll" }, history.node))));

  // Each first-page load is numbered: an answer that comes after a later load was sent (a
  // slow answer for the filter before the last change, or a poll's) is dropped, so the
  // table never shows another filter's rows than the form's.
  //
  // Anomalies come a page at a time (newest first). The 5 s poll refreshes the first page
  // only; "Older" appends the next page by the API's cursor, and the appended rows stay
  // under each refreshed first page (a row listed in both is listed once) with the cursor
  // of the last page appended, so a refresh never takes the older pages away. A new
  // filter starts again from its own first page.
  //
  // A filter the API refuses (422) is not polled again: the answer would be the same
  // refusal every 5 s. Changing the filter (or applying it again) asks afresh.
  let aSeq = 0;
  let hSeq = 0;
  let aKey = null; // the query the listed rows answer
  let aRows = []; // every anomaly listed, newest first
  let aOlder = false; // older pages appended for aKey
  let aCursor = null; // where the next older page starts (null: none left)
  let aRefused = null; // the anomaly query the API refused
  let hRefused = null; // the history query the API refused
  function showAnomalies(rows) {
    aRows = rows;
    anomalies.render(rows);
    aMore.hidden = aCursor === null;
  }
  async function loadAnomalies({ poll = false } = {}) {
    const p = params(aForm);
    const key = p.toString();
    if (poll && key === aRefused) return;
    const seq = ++aSeq;
    p.set("limit", String(PAGE));
    try {
      const out = await api(`/api/v1/anomalies?${p}`);
      if (seq !== aSeq) return;
      const items = out.items || [];
      if (key !== aKey || !aOlder) {
        aKey = key;
        aOlder = false;
        aCursor = out.next_cursor ?? null;
        showAnomalies(items);
      } else {
        const ids = new Set(items.map((a) => a.id));
        showAnomalies([...items, ...aRows.filter((a) => !ids.has(a.id))]);
      }
      markStale(anomalies.node, null);
      aMsg.textContent = "";
    } catch (err) {
      if (seq !== aSeq) return;
      if (err.status === 422) aRefused = key;
      markStale(anomalies.node, err); // the rows are the last filter's answer, not this one's
      if (key !== aKey) aMore.hidden = true; // no older pages of a filter not listed
      aMsg.className = "msg err";
      aMsg.textContent = err.message;
    }
  }
  async function loadOlder() {
    const key = aKey;
    if (key === null || aCursor === null) return;
    const p = new URLSearchParams(key);
    p.set("limit", String(PAGE));
    p.set("cursor", aCursor);
    aMore.disabled = true;
    try {
      const out = await api(`/api/v1/anomalies?${p}`);
      if (key !== aKey) return; // another filter was listed meanwhile
      const ids = new Set(aRows.map((a) => a.id));
      aOlder = true;
      aCursor = out.next_cursor ?? null;
      showAnomalies([...aRows, ...(out.items || []).filter((a) => !ids.has(a.id))]);
    } catch (err) {
      if (key !== aKey) return;
      aMsg.className = "msg err";
      aMsg.textContent = `Older anomalies not loaded: ${err.message}`;
    } finally {
      aMore.disabled = false;
    }
  }
  async function loadHistory({ poll = false } = {}) {
    if (!auth.signedIn) {
      ++hSeq;
      hMsg.className = "msg err";
      hMsg.textContent = "The notification history needs a token: sign in above.";
      history.render([]);
      return;
    }
    const p = params(hForm);
    const key = p.toString();
    if (poll && key === hRefused) return;
    const seq = ++hSeq;
    p.set("limit", String(PAGE));
    try {
      const out = await api(`/api/v1/alerts/history?${p}`, { quiet: true });
      if (seq !== hSeq) return;
      history.render(out.items);
      markStale(history.node, null);
      hMsg.textContent = "";
    } catch (err) {
      if (seq !== hSeq) return;
      if (err.status === 422) hRefused = key;
      markStale(history.node, err);
      hMsg.className = "msg err";
      hMsg.textContent = err.status === 401 ? "The notification history needs a token with read scope." : err.message;
    }
  }
  loadAnomalies();
  loadHistory();
  const timer = setInterval(() => { loadAnomalies({ poll: true }); loadHistory({ poll: true }); }, 5000);
  return { unmount() { clearInterval(timer); } };
}
