// Alerts view: stored anomalies and the notification history, each with filters.
import { api, auth } from "../api.js";
import { el, markStale, Table } from "../dom.js";
import * as f from "../format.js";

const KINDS = ["", "volume", "volume_imbalance", "price_change", "volatility", "ma_deviation", "book_imbalance",
  "spread", "whale", "whale_burst", "divergence", "liquidations", "funding", "arbitrage"];
const SEVERITIES = ["", "low", "medium", "high", "critical"];
const STATUSES = ["", "sent", "failed", "suppressed", "digested"];
const EVENT_TYPES = ["", "anomaly", "signal", "fill", "exit", "risk", "kill_switch", "feed_down", "feed_recovered",
  "notice", "test", "digest"];
const PAGE = 200; // rows asked for at a time

function select(name, values, label) {
  return el("label", {}, label, el("select", { name }, values.map((v) => el("option", { value: v, text: v || "any" }))));
}

// Applies the form's filters when a field changes and on submit (Enter in a field, the
// Apply button). Enter in an edited text field fires both, the field's change and then the
// form's submit, and so does a click on Apply after an edit (the field's change as it loses
// the focus, then the submit): the submit that follows a change of the same query asks
// nothing more, so each sends one request. Apply again asks afresh.
function filterForm(id, fields, onChange) {
  const form = el("form", { class: "inline", id }, fields);
  let changed = null; // the query a change applied since the last submit
  form.addEventListener("change", () => {
    changed = params(form).toString();
    onChange();
  });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const again = changed !== params(form).toString();
    changed = null;
    if (again) onChange();
  });
  return form;
}

function params(form) {
  const out = new URLSearchParams();
  for (const [k, v] of new FormData(form)) if (String(v).trim()) out.set(k, String(v).trim());
  return out;
}

// A list the API pages by keyset, newest first, under a filter form.
//
// Each first-page load is numbered: an answer that comes after a later load was sent (a slow
// answer for the filter before the last change, or a poll's) is dropped, so the table never
// shows another filter's rows than the form's.
//
// The 5 s poll refreshes the first page only; "Older" appends the next page by the API's
// cursor, and the appended rows stay under each refreshed first page (a row listed in both
// is listed once) with the cursor of the last page appended, so a refresh never takes the
// older pages away. A new filter starts again from its own first page.
//
// A filter the API refuses (422) is not polled again: the answer would be the same refusal
// every 5 s. Changing the filter (or applying it again) asks afresh.
function pagedList({ path, form, table, msg, more, noun, empty, quiet = false, explain = (err) => err.message }) {
  let seq = 0;
  let key = null; // the query the listed rows answer
  let rows = []; // every row listed, newest first
  let older = false; // older pages appended for key
  let cursor = null; // where the next older page starts (null: none left)
  let refused = null; // the query the API refused
  function show(list) {
    rows = list;
    // no filter: nothing is stored yet; a filter: nothing matches it
    table.empty = key ? `no ${noun} match these filters` : empty;
    table.render(list);
    more.hidden = cursor === null;
  }
  function fail(text) {
    msg.className = "msg err";
    msg.textContent = text;
  }
  async function load({ poll = false } = {}) {
    const p = params(form);
    const k = p.toString();
    if (poll && k === refused) return;
    const s = ++seq;
    p.set("limit", String(PAGE));
    try {
      const out = await api(`${path}?${p}`, { quiet });
      if (s !== seq) return;
      const items = out.items || [];
      if (k !== key || !older) {
        key = k;
        older = false;
        cursor = out.next_cursor ?? null;
        show(items);
      } else {
        const ids = new Set(items.map((r) => r.id));
        show([...items, ...rows.filter((r) => !ids.has(r.id))]);
      }
      markStale(table.node, null);
      msg.textContent = "";
    } catch (err) {
      if (s !== seq) return;
      if (err.status === 422) refused = k;
      markStale(table.node, err); // the rows are the last filter's answer, not this one's
      if (k !== key) more.hidden = true; // no older pages of a filter not listed
      fail(explain(err));
    }
  }
  async function loadOlder() {
    const k = key;
    if (k === null || cursor === null) return;
    const p = new URLSearchParams(k);
    p.set("limit", String(PAGE));
    p.set("cursor", cursor);
    more.disabled = true;
    try {
      const out = await api(`${path}?${p}`, { quiet });
      if (k !== key) return; // another filter was listed meanwhile
      const ids = new Set(rows.map((r) => r.id));
      older = true;
      cursor = out.next_cursor ?? null;
      show([...rows, ...(out.items || []).filter((r) => !ids.has(r.id))]);
    } catch (err) {
      if (k !== key) return;
      fail(`Older ${noun} not loaded: ${explain(err)}`);
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener("click", () => loadOlder());
  // Nothing can be listed (no token): no rows, no "Older", the reason instead, and any
  // answer still on its way is dropped.
  function withhold(text, why) {
    ++seq;
    key = null;
    older = false;
    cursor = null;
    rows = [];
    table.empty = why;
    table.render([]);
    more.hidden = true;
    markStale(table.node, null);
    fail(text);
  }
  return { load, withhold };
}

function olderButton(id, what) {
  return el("button", { type: "button", id, text: "Older", hidden: true, title: `list the next page of older ${what}` });
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
  ], { max: Infinity, id: "alerts-anomalies" }); // pages: "Older"
  const history = new Table([
    { key: "ts", label: "time", fmt: (n) => f.time(n.ts) },
    { key: "channel", label: "channel" },
    { key: "status", label: "status", cls: (n) => (n.status === "failed" ? "down" : n.status === "sent" ? "up" : "muted") },
    { key: "event_type", label: "event" },
    { key: "title", label: "title" },
    { key: "attempts", label: "attempts", num: true },
    { key: "error", label: "error", fmt: (n) => n.error || "–" },
  ], { max: Infinity, id: "alerts-history" }); // pages: "Older"
  const aMsg = el("div", { class: "msg" });
  const hMsg = el("div", { class: "msg" });
  const aMore = olderButton("anomalies-more", "anomalies");
  const hMore = olderButton("history-more", "notifications");
  const aForm = filterForm("anomaly-filters", [
    select("kind", KINDS, "kind"), select("min_severity", SEVERITIES, "min severity"),
    el("label", {}, "symbol", el("input", { name: "symbol", size: 11, placeholder: "BTC-USDT" })),
    el("label", {}, "exchange", el("input", { name: "exchange", size: 10 })),
    el("button", { type: "submit", text: "Apply" }),
  ], () => aList.load());
  const hForm = filterForm("history-filters", [
    el("label", {}, "channel", el("input", { name: "channel", size: 10 })),
    select("status", STATUSES, "status"),
    select("event_type", EVENT_TYPES, "event"),
    el("button", { type: "submit", text: "Apply" }),
  ], () => loadHistory());
  root.append(el("div", { class: "grid" },
    el("section", { class: "panel wide" }, el("h2", { text: "Anomalies" }), aForm, aMsg, el("div", { class: "scroll" }, anomalies.node), aMore),
    el("section", { class: "panel wide" }, el("h2", { text: "Notifications" }), hForm, hMsg, el("div", { class: "scroll" }, history.node), hMore)));

  const aList = pagedList({
    path: "/api/v1/anomalies", form: aForm, table: anomalies, msg: aMsg, more: aMore,
    noun: "anomalies", empty: "no anomalies stored yet",
  });
  const hList = pagedList({
    path: "/api/v1/alerts/history", form: hForm, table: history, msg: hMsg, more: hMore,
    noun: "notifications", empty: "no notifications yet: none sent, failed, suppressed or digested",
    quiet: true, explain: (err) => (err.status === 401 ? "The notification history needs a token with read scope." : err.message),
  });
  function loadHistory({ poll = false } = {}) {
    if (!auth.signedIn) {
      hList.withhold("The notification history needs a token: sign in above.", "sign in to list the notifications");
      return;
    }
    hList.load({ poll });
  }
  aList.load();
  loadHistory();
  const timer = setInterval(() => { aList.load({ poll: true }); loadHistory({ poll: true }); }, 5000);
  return { unmount() { clearInterval(timer); } };
}
