// The API client: the token (sessionStorage), JSON requests, clear messages on 401/403,
// and one shared WebSocket with per-channel listeners and reconnect.
const KEY = "cryptomon.token";

export class ApiError extends Error {
  constructor(status, message, body, token = "") {
    super(message);
    this.status = status;
    this.body = body;
    this.token = token; // the token a 401 refused ("" when none was sent)
  }
}

export const auth = {
  get token() { return sessionStorage.getItem(KEY) || ""; },
  set token(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
    if (value) refusedToken = ""; // signed in (again): asked afresh
  },
  session: null, // {name, scopes, anonymous, public_read}
  can(scope) { return !!this.session && !this.session.anonymous && this.session.scopes.includes(scope); },
  get signedIn() { return !!this.session && !this.session.anonymous; },
};

const listeners = new Set();
export function onAuthError(fn) { listeners.add(fn); }

// The last token the API refused (401), noted the moment its answer arrives: no request or
// socket is sent with it after that, even before the page has handled the refusal (a
// request sent with it counts as a failed authentication, and api.auth_fail_limit of them
// throttle this address for a minute).
let refusedToken = "";
export function wasRefused(token) { return !!token && token === refusedToken; }

export function explain(status, message) {
  if (status === 401) return `The API refused the request (401): ${message}. Sign in with a valid token.`;
  if (status === 403) return `This token may not do that (403): ${message}.`;
  return `${message} (HTTP ${status})`;
}

// A 422's message names the fields ("invalid body: body.amount"); their details say why
// ("Input should be greater than 0"): both are shown, or the user cannot tell what to change.
function withFields(error) {
  const fields = error.details && Array.isArray(error.details.fields) ? error.details.fields : [];
  // a reason the message already carries ("body.stop_loss: 150 must be below ...") once
  const why = fields.filter((x) => x && x.message && !error.message.includes(x.message))
    .map((x) => (fields.length === 1 ? x.message : `${x.field}: ${x.message}`));
  return why.length ? `${error.message} (${why.join("; ")})` : error.message;
}

export async function api(path, { method = "GET", body, quiet = false } = {}) {
  const headers = { Accept: "application/json" };
  const sent = auth.token;
  if (wasRefused(sent)) { // refused already: the same answer without asking again
    const err = new ApiError(401, "the saved token was refused", null, sent);
    if (!quiet) listeners.forEach((fn) => fn(err));
    throw err;
  }
  if (sent) headers.Authorization = "Bearer " + sent;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (resp.status === 401 && sent) refusedToken = sent;
  let data = null;
  try { data = await resp.json(); } catch { data = null; }
  if (!resp.ok) {
    const message = data && data.error ? withFields(data.error) : resp.statusText;
    const err = new ApiError(resp.status, message, data, resp.status === 401 ? sent : "");
    if ((resp.status === 401 || resp.status === 403) && !quiet) listeners.forEach((fn) => fn(err));
    throw err;
  }
  return data;
}

// ---------------------------------------------------------------- WebSocket

export class Live {
  constructor() {
    this.socket = null;
    this.handlers = new Map(); // channel -> Set of fn
    this.filters = new Map(); // channel -> data of the Subscribe message
    this.status = () => {};
    this.retry = 500;
    this.closed = false;
    this.opens = 0; // connections opened so far (a reconnection makes it 2 and more)
    this.lost = false; // the socket closed on its own (daemon restart, network): not by us
    this.timer = null; // the pending reconnection after a lost socket
    this.wait = 0; // its delay (ms)
    this.refused = () => {}; // a socket closed before it opened (daemon away, or token refused)
    this.watchers = new Set(); // fn(up) of the views showing what the socket feeds
  }
  // Calls fn(false) when the socket is lost and fn(true) when one opens; returns the
  // unsubscriber. A view fed by the socket marks what it shows as out of date meanwhile.
  watch(fn) {
    this.watchers.add(fn);
    return () => this.watchers.delete(fn);
  }
  connect() {
    // one socket at a time: a retry still pending (the daemon was away) and a socket still
    // open are dropped here, so a sign-in during the backoff cannot leave two sockets
    // delivering every event twice
    clearTimeout(this.timer);
    this.timer = null;
    const old = this.socket;
    if (old && old.readyState !== WebSocket.CLOSED) old.close();
    this.closed = false;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const token = wasRefused(auth.token) ? "" : auth.token;
    const q = token ? "?token=" + encodeURIComponent(token) : "";
    const ws = new WebSocket(`${proto}//${location.host}/ws${q}`);
    this.socket = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.retry = 500;
      this.opens += 1;
      const recovered = this.lost;
      this.lost = false;
      this.status(true, recovered);
      for (const fn of [...this.watchers]) fn(true);
      for (const data of this.filters.values()) this._send("Subscribe", data);
    };
    ws.onmessage = (ev) => {
      if (this.socket !== ws) return; // a replaced socket's last messages
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      const set = this.handlers.get(msg.channel);
      if (set) for (const fn of set) fn(msg.data);
    };
    ws.onclose = () => {
      if (this.socket !== ws) return; // an old socket replaced by reconnect()
      this.status(false);
      for (const fn of [...this.watchers]) fn(false);
      if (!opened && !this.closed) this.refused();
      if (!this.closed) {
        this.lost = true;
        this.timer = setTimeout(() => this.connect(), this.retry);
        this.wait = this.retry;
        this.retry = Math.min(this.retry * 2, 10000);
      }
    };
  }
  // Why a socket was refused before it opened: a plain GET of /ws gets the refusal the
  // upgrade got (the browser's WebSocket does not tell): 429 too many sockets without a token
  // from this address, 503 the daemon's client cap. Returns {status, message} for those (the
  // next retry waits at least their Retry-After), else null (admitted: 400 without an
  // upgrade; or the daemon is away).
  async probe() {
    const headers = { Accept: "application/json" };
    if (auth.token && !wasRefused(auth.token)) headers.Authorization = "Bearer " + auth.token;
    let resp;
    try { resp = await fetch("/ws", { headers, cache: "no-store" }); } catch { return null; }
    if (resp.status !== 429 && resp.status !== 503) return null;
    let data = null;
    try { data = await resp.json(); } catch { data = null; }
    const after = Number(resp.headers.get("Retry-After")) * 1000;
    if (after > 0 && this.timer !== null && !this.closed) {
      clearTimeout(this.timer);
      const wait = Math.max(after, this.wait);
      this.timer = setTimeout(() => this.connect(), wait);
      this.wait = wait;
    }
    return { status: resp.status, message: data && data.error ? data.error.message : resp.statusText, wait: this.wait };
  }
  reconnect() {
    this.closed = true;
    this.connect();
  }
  _send(msg_type, data) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({ msg_type, data }));
    }
  }
  // Subscribe fn to channel (with optional symbols/exchanges); returns the unsubscriber.
  on(channel, fn, filter = {}) {
    if (!this.handlers.has(channel)) this.handlers.set(channel, new Set());
    this.handlers.get(channel).add(fn);
    const data = { channel, ...filter };
    this.filters.set(channel, data);
    this._send("Subscribe", data);
    return () => {
      const set = this.handlers.get(channel);
      set.delete(fn);
      if (set.size === 0) {
        this.filters.delete(channel);
        this._send("Unsubscribe", { channel });
      }
    };
  }
}

export const live = new Live();
