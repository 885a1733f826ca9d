// Small DOM helpers: elements from data (textContent only, never HTML strings) and tables
// that replace their rows in one go, so the DOM stays bounded.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// columns: [{key, label, num?, title?, fmt?(row) -> string|Node, cls?(row)}]
export class Table {
  constructor(columns, { max = 200, empty = "nothing yet", onRow = null, sortable = false, id = null } = {}) {
    this.columns = columns;
    this.max = max;
    this.empty = empty;
    this.onRow = onRow;
    this.sort = null; // {key, dir}
    this.rows = [];
    this.body = el("tbody");
    const head = el("tr", {}, columns.map((c) =>
      el("th", {
        class: [c.num ? "num" : "", sortable ? "sortable" : ""].join(" ").trim() || undefined,
        text: c.label,
        title: c.title,
        onclick: sortable ? () => this.sortBy(c.key) : undefined,
      })));
    this.node = el("table", { id }, el("thead", {}, head), this.body);
  }
  sortBy(key) {
    const dir = this.sort && this.sort.key === key ? -this.sort.dir : -1;
    this.sort = { key, dir };
    this.render(this.rows);
  }
  render(rows) {
    this.rows = rows;
    let view = rows;
    if (this.sort) {
      const { key, dir } = this.sort;
      view = [...rows].sort((a, b) => {
        const x = a[key], y = b[key];
        const nx = Number(x), ny = Number(y);
        if (Number.isFinite(nx) && Number.isFinite(ny)) return (nx - ny) * dir;
        return String(x ?? "").localeCompare(String(y ?? "")) * dir;
      });
    }
    view = view.slice(0, this.max);
    const trs = view.map((row) => el("tr", {
      class: this.onRow ? "link" : undefined,
      onclick: this.onRow ? () => this.onRow(row) : undefined,
    }, this.columns.map((c) => {
      const v = c.fmt ? c.fmt(row) : row[c.key];
      const cls = [c.num ? "num" : "", c.cls ? c.cls(row) : ""].join(" ").trim();
      return el("td", { class: cls || undefined }, v instanceof Node ? v : String(v ?? "–"));
    })));
    if (!trs.length) trs.push(el("tr", {}, el("td", { colspan: this.columns.length, class: "muted", text: this.empty })));
    this.body.replaceChildren(...trs);
  }
}

export function panel(title, ...children) {
  return el("section", { class: "panel" }, el("h2", { text: title }), ...children);
}

export function kv(pairs) {
  return el("dl", { class: "kv" }, pairs.flatMap(([k, v, cls]) => [
    el("dt", { text: k }), el("dd", { class: cls }, v instanceof Node ? v : String(v ?? "–")),
  ]));
}

export function message(node, text, ok = false) {
  node.className = "msg " + (ok ? "ok" : "err");
  node.textContent = text;
}

// Ask for confirmation in the page's <dialog>; resolves true on Confirm.
export function confirmAction(text) {
  const dlg = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok"), { once: true });
    dlg.showModal();
  });
}

// Marks what a failed refresh left on screen as out of date (dimmed, the reason on hover),
// so numbers from before an outage do not read as live; a later success clears it.
export function markStale(node, err) {
  node.classList.toggle("stale", !!err);
  if (err) node.title = `not updated: ${err.message || err} (showing the last answer)`;
  else node.removeAttribute("title");
}

// Runs fn at most once per animation frame, however often it is requested.
export function frameThrottle(fn) {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; fn(); });
  };
}
