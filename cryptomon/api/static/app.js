// The dashboard shell: login, banner, hash router, WebSocket status. Each view module
// exports mount(root, params, ctx) returning {unmount()}.
import { api, auth, explain, live, onAuthError } from "./api.js";
import * as markets from "./views/markets.js";
import * as market from "./views/market.js";
import * as trading from "./views/trading.js";
import * as alerts from "./views/alerts.js";
import * as system from "./views/system.js";
import * as backtests from "./views/backtests.js";

const VIEWS = { markets, market, trading, alerts, system, backtests };
const $ = (id) => document.getElementById(id);
let current = null;

export function banner(text, kind = "error") {
  const node = $("banner");
  if (!text) { node.hidden = true; node.textContent = ""; return; }
  node.hidden = false;
  node.className = kind === "info" ? "info" : "";
  node.textContent = text;
}

function showLogin(show) {
  $("login").hidden = !show;
  $("logout").hidden = !auth.token;
}

let sessionError = null; // why the last session request failed (an ApiError), null after one that did not
async function loadSession() {
  sessionError = null;
  try {
    auth.session = await api("/api/v1/session", { quiet: true });
    const s = auth.session;
    $("who").textContent = s.anonymous ? "public read (no token)" : `${s.name} · ${s.scopes.join(", ")}`;
    showLogin(s.anonymous);
    return true;
  } catch (err) {
    sessionError = err;
    auth.session = null;
    $("who").textContent = "";
    showLogin(true);
    banner(explain(err.status, err.message));
    return false;
  }
}

function route() {
  // a part that is not valid percent-encoding (a hand-typed address) is taken as written
  const decode = (part) => { try { return decodeURIComponent(part); } catch { return part; } };
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decode);
  const name = VIEWS[parts[0]] ? parts[0] : "markets";
  return { name, params: parts.slice(1) };
}

function render() {
  const { name, params } = route();
  if (current) current.unmount();
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.view === (name === "market" ? "markets" : name));
  }
  const root = $("view");
  root.replaceChildren();
  root.dataset.view = name;
  current = VIEWS[name].mount(root, params, { banner });
}

onAuthError((err) => {
  if (err.token) { tokenRefused(err.token); return; } // a 401 of the saved token
  banner(explain(err.status, err.message));
  if (err.status === 401) showLogin(true);
});

// The saved token ``tried`` was refused (401: the daemon restarted with other tokens, the
// token was removed): it is forgotten at its first refusal, by whichever request or socket
// met it first, and the page goes on as the public sees it. Every request sent with it
// meanwhile counts as a failed authentication, and api.auth_fail_limit of them throttle this
// address (429, for public reads too) for a minute: the views' polls and reloads (8 requests
// at a time on a market) would reach it before the socket's backoff asked again.
async function tokenRefused(tried) {
  if (!tried || auth.token !== tried) return; // forgotten already, or signed in meanwhile
  auth.token = "";
  await loadSession();
  banner("The saved token was refused (401): sign in again.");
  live.reconnect();
  render();
}

$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  auth.token = $("token").value.trim();
  $("token").value = "";
  banner("");
  if (await loadSession()) {
    live.reconnect();
    render();
  } else {
    // keep the message; the page goes on as the public sees it, and the header says so (no
    // "Sign out": the refused token was never a session)
    auth.token = "";
    await loadSession();
  }
});

$("logout").addEventListener("click", async () => {
  auth.token = "";
  banner("");
  await loadSession();
  live.reconnect();
  render();
});

live.status = (up, recovered = false) => {
  const pill = $("live");
  pill.textContent = up ? "live" : "offline";
  pill.classList.toggle("ok", up);
  pill.dataset.opens = String(live.opens);
  pill.title = up ? "WebSocket connected" : "WebSocket down: reconnecting with backoff";
  // back after an outage (a daemon restart): the view reloads what it missed meanwhile
  if (up && refusal && $("banner").textContent === refusal) banner("");
  if (up) refusal = "";
  if (up && recovered && current) render();
};

// A socket that never opened: the daemon is away, or it refuses the token (restarted with
// other tokens: the demo's generated one changes). The browser does not tell which; the
// session route does. A refused token is forgotten at once and the page goes on as the
// public sees it: retrying with it every few seconds would leave the view frozen and the
// pill offline with no word why, and the failed authentications would get this address
// throttled (429) for public reads too.
//
// A socket refused for being one too many (429: api.ws_max_anonymous_per_ip sockets without a
// token from this address, e.g. many open tabs; 503: the daemon's client cap) says so in the
// banner while it retries with backoff; the banner goes when the socket is back.
let refusal = ""; // the banner text of the last refusal, cleared once connected
live.refused = async () => {
  const tried = auth.token;
  if (tried) {
    try {
      await api("/api/v1/session", { quiet: true });
    } catch (err) {
      if (err.status === 401) await tokenRefused(tried);
      return; // refused, away, or signed in meanwhile
    }
  }
  const why = await live.probe();
  if (!why || live.socket.readyState === WebSocket.OPEN) return;
  const hint = why.status === 429 && !auth.signedIn ? " Close another tab of this dashboard, or sign in." : "";
  refusal = `Live updates refused (${why.status}): ${why.message}.${hint} ` +
    `Retrying in ${Math.round(why.wait / 1000)} s and with backoff after; the tables still refresh meanwhile.`;
  banner(refusal, "info");
};

// A sign-in link (`crypto-monitor demo` prints one): `#token=...` is kept for this tab like a
// typed token and taken out of the address bar and of this history entry. A fragment is
// never sent to the server, so the token is not in any request line or access log. The link
// works when the page loads and when it is opened in a tab already showing the dashboard
// (a hash change: no new document). Returns null without a link, else the problem ("" none).
function takeLink() {
  const linked = /^#token=([^&/]+)$/.exec(location.hash);
  if (!linked) return null;
  let problem = "";
  try {
    auth.token = decodeURIComponent(linked[1]);
  } catch {
    problem = "The sign-in link's token is not valid URL encoding (expected #token=TOKEN): sign in below.";
  }
  history.replaceState(null, "", location.pathname + location.search);
  return problem;
}

// A session request that failed for another reason than the token (429 too many requests in
// progress from this address or throttled, the daemon away or failing): the token is kept and
// the session asked again with backoff (at least the answer's Retry-After); once it answers,
// the page is shown as that token sees it.
let sessionRetry = null;
function retrySession(delay) {
  clearTimeout(sessionRetry);
  const err = sessionError;
  const details = err && err.body && err.body.error ? err.body.error.details : null;
  const wait = Math.max(delay, details ? Number(details.retry_after_s) * 1000 || 0 : 0);
  const why = err && err.status ? explain(err.status, err.message) : `The daemon did not answer (${err ? err.message : "no answer"})`;
  banner(`${why}. Retrying in ${Math.round(wait / 1000)} s.`);
  sessionRetry = setTimeout(async () => {
    sessionRetry = null;
    const outcome = await signIn("", Math.min(delay * 2, 10000));
    if (outcome === "retry") return;
    if (outcome === "ok") banner("");
    live.reconnect();
    render();
  }, wait);
}

// Returns "ok", "refused" (the token was forgotten: the page goes on as the public sees it)
// or "retry" (no answer yet: asked again later, the token kept).
async function signIn(linkProblem, delay = 1000) {
  clearTimeout(sessionRetry);
  const ok = await loadSession();
  let outcome = "ok";
  if (!ok && sessionError && sessionError.status !== 401) {
    retrySession(delay);
    outcome = "retry";
  } else if (!ok && auth.token) {
    // a stored token that no longer works: forget it, show the page as the public sees it
    auth.token = "";
    const publicOk = await loadSession();
    if (publicOk) banner("The saved token was refused (401): sign in again.");
    outcome = "refused";
  }
  if (linkProblem) banner(linkProblem);
  return outcome;
}

window.addEventListener("hashchange", async () => {
  const linkProblem = takeLink();
  if (linkProblem === null) { render(); return; }
  banner("");
  await signIn(linkProblem);
  live.reconnect();
  render();
});

(async () => {
  await signIn(takeLink());
  live.connect();
  render();
  document.body.dataset.ready = "1"; // the shell is up (browser tests wait for this)
})();
