// Alerts view: stored anomalies and the notification history, each with filters.
import { api, auth } from "../api.js";
import { el, markStale, panel, Table } from "../dom.js";
import * as f from "../format.js";

const KINDS = ["", "volume", "volume_imbalance", "price_change", "volatility", "ma_deviation", "book_imbalance",
  "spread", "whale", "whale_burst", "divergence", "liquidations", "funding"];
const SEVERITIES = ["", "low", "medium", "high", "critical"];
const STATUSES = ["", "sent", "failed", "suppressed", "digested"];

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
  ], { max: 200, empty: "no anomalies match", id: "alerts-anomalies" });
  const history = new Table([
    { key: "ts", label: "time", fmt: (n) => f.time(n.ts) },
    { key: "channel", label: "channel" },
    { key: "status", label: "status", cls: (n) => (n.status === "failed" ? "down" : n.status === "sent" ? "up" : "muted") },
    { key: "event_type", label: "event" },
    { key: "title", label: "title" },
    { key: "attempts", label: "attempts", num: true },
    { key: "error", label: "error" },
  ], { max: 200, empty: "no notifications match", id: "alerts-history" });
  const aMsg = el("div", { class: "msg" });
  const hMsg = el("div", { class: "msg" });
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
    el("section", { class: "panel wide" }, el("h2", { text: "Anomalies" }), aForm, aMsg, el("div", { class: "scroll" }, anomalies.node)),
    el("section", { class: "panel wide" }, el("h2", { text: "Notifications" }), hForm, hMsg, el("div", { class: "scroll" }, history.node))));

  // Each load is numbered: an answer that comes after a later load was sent (a slow
  // answer for the filter before the last change, or a poll's) is dropped, so the table
  // never shows another filter's rows than the form's.
  let aSeq = 0;
  let hSeq = 0;
  async function loadAnomalies() {
    const seq = ++aSeq;
    const p = params(aForm);
    p.set("limit", "200");
    try {
      const out = await api(`/api/v1/anomalies?${p}`);
      if (seq !== aSeq) return;
      anomalies.render(out.items);
      markStale(anomalies.node, null);
      aMsg.textContent = "";
    } catch (err) {
      if (seq !== aSeq) return;
      markStale(anomalies.node, err); // the rows are the last filter's answer, not this one's
      aMsg.className = "msg err";
      aMsg.textContent = err.message;
    }
  }
  async function loadHistory() {
    const seq = ++hSeq;
    if (!auth.signedIn) {
      hMsg.className = "msg err";
      hMsg.textContent = "The notification history needs a token: sign in above.";
      history.render([]);
      return;
    }
    const p = params(hForm);
    p.set("limit", "200");
    try {
      const out = await api(`/api/v1/alerts/history?${p}`, { quiet: true });
      if (seq !== hSeq) return;
      history.render(out.items);
      markStale(history.node, null);
      hMsg.textContent = "";
    } catch (err) {
      if (seq !== hSeq) return;
      markStale(history.node, err);
      hMsg.className = "msg err";
      hMsg.textContent = err.status === 401 ? "The notification history needs a token with read scope." : err.message;
    }
  }
  loadAnomalies();
  loadHistory();
  const timer = setInterval(() => { loadAnomalies(); loadHistory(); }, 5000);
  return { unmount() { clearInterval(timer); } };
}
