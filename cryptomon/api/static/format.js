// Numbers with units and sensible precision.
const nf = (min, max) => new Intl.NumberFormat("en-US", { minimumFractionDigits: min, maximumFractionDigits: max });
const cache = new Map();
function fmt(min, max) {
  const key = min * 100 + max;
  if (!cache.has(key)) cache.set(key, nf(min, max));
  return cache.get(key);
}
// "+" before a positive number, "-" before a negative one, no sign where the number shown
// rounds to zero (-0.0036 at 2 decimals is "0.00", not "-0.00")
const signed = new Map();
function fmtSigned(digits) {
  if (!signed.has(digits)) {
    signed.set(digits, new Intl.NumberFormat("en-US", {
      minimumFractionDigits: digits, maximumFractionDigits: digits, signDisplay: "exceptZero",
    }));
  }
  return signed.get(digits);
}
const num = (v) => (v === null || v === undefined || v === "" ? NaN : Number(v));

// A price with decimals by magnitude: 60,017.15 / 3,073.37 / 0.51234 / 0.00001234.
export function price(v) {
  const x = num(v);
  if (!Number.isFinite(x)) return "–";
  const a = Math.abs(x);
  const d = a >= 1000 ? 2 : a >= 1 ? 4 : a >= 0.01 ? 5 : 8;
  return fmt(Math.min(2, d), d).format(x);
}
export function amount(v, digits = 6) {
  const x = num(v);
  return Number.isFinite(x) ? fmt(0, digits).format(x) : "–";
}
export function money(v, ccy = "USDT") {
  const x = num(v);
  return Number.isFinite(x) ? `${fmt(2, 2).format(x)} ${ccy}` : "–";
}
export function signedMoney(v, ccy = "USDT") {
  const x = num(v);
  if (!Number.isFinite(x)) return "–";
  return `${fmtSigned(2).format(x)} ${ccy}`;
}
export function pct(v, digits = 2) {
  const x = num(v);
  if (!Number.isFinite(x)) return "–";
  return `${fmtSigned(digits).format(x)} %`;
}
export function bps(v) {
  const x = num(v);
  if (!Number.isFinite(x)) return "–";
  return `${Math.abs(x) < 1 ? fmt(2, 3).format(x) : fmt(1, 2).format(x)} bps`;
}
export function bytes(v) {
  const x = num(v);
  if (!Number.isFinite(x)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let y = x;
  while (Math.abs(y) >= 1024 && i < units.length - 1) { y /= 1024; i += 1; }
  return `${fmt(0, i === 0 ? 0 : 1).format(y)} ${units[i]}`;
}
export function duration(s) {
  const x = num(s);
  if (!Number.isFinite(x)) return "–";
  if (x < 1) return `${fmt(0, 1).format(x * 1000)} ms`;
  if (x < 120) return `${fmt(0, 1).format(x)} s`;
  // rounded to the smallest unit shown before it is split (and before the unit is chosen):
  // 179.6 s is 3 min, not "2 min 60 s"; 7199.7 s is 2 h 0 min, not "119 min 60 s"
  const sec = Math.round(x);
  if (sec < 7200) return `${Math.floor(sec / 60)} min` + (sec % 60 ? ` ${sec % 60} s` : "");
  const m = Math.round(x / 60);
  if (m < 2880) return `${Math.floor(m / 60)} h ${m % 60} min`;
  const h = Math.round(x / 3600);
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}
export function count(v) {
  const x = num(v);
  return Number.isFinite(x) ? fmt(0, 0).format(x) : "–";
}
export function rate(v) {
  const x = num(v);
  return Number.isFinite(x) ? `${fmt(0, 1).format(x)} /s` : "–";
}
export function time(ts) {
  const x = num(ts);
  if (!Number.isFinite(x)) return "–";
  const d = new Date(x * 1000);
  return d.toISOString().replace("T", " ").slice(0, 19);
}
export function clock(ts) {
  return time(ts).slice(11);
}
// The headline number of an anomaly, in the unit of its kind.
export function anomalyValue(a) {
  switch (a.kind) {
    // value is the kind's own number; price_change_pct is every anomaly's context (the
    // price change over the lookback), not an MA deviation's or a divergence's value
    case "price_change": // the change, %
    case "ma_deviation": // the distance from the moving average, %
      return pct(a.value);
    case "divergence": { // the gap to the other exchanges, bps
      const x = num(a.value);
      return Number.isFinite(x) ? `${x > 0 ? "+" : ""}${bps(x)}` : "–";
    }
    case "spread":
      return bps(a.value);
    case "funding":
      return pct((num(a.value) || 0) * 100, 4);
    case "book_imbalance":
    case "volume_imbalance":
      return `${fmt(2, 2).format(num(a.value))} imbalance`;
    case "whale_burst": // value: the whale trades inside the burst window
      return `${fmt(0, 0).format(num(a.value))} whale trades`;
    case "whale": // value: the taker order's notional
      return `${fmt(0, 0).format(num(a.value))} notional`;
    case "liquidations": // value: the liquidated volume in the bucket, base units
      return `${amount(a.value)} liquidated`;
    default:
      return a.z_score !== null && a.z_score !== undefined
        ? `z ${fmt(1, 1).format(num(a.z_score))}`
        : fmt(0, 3).format(num(a.value));
  }
}
// The colour class of a PnL or a change, as shown (2 decimals): one that rounds to zero
// gets none (a red "0.00" reads as a loss).
export function sign(v) {
  const x = Math.round(Math.abs(num(v)) * 100) * Math.sign(num(v)); // half away from zero, as shown
  return x > 0 ? "up" : x < 0 ? "down" : "";
}

// What placed an order, in words (the API's origin codes); a close the engine did not send
// says so: the venue's own (forced), or a venue order (a trade by hand on the live account).
const ORIGINS = {
  signal: "signal", manual: "manual", stop_loss: "stop-loss", take_profit: "take-profit",
  kill_switch: "kill switch", reconcile: "reconciliation",
  liquidation: "liquidation (forced by the venue)", settlement: "settlement (forced by the venue)",
  adl: "auto-deleveraging (forced by the venue)", venue: "venue order (not sent by cryptomon)",
};
export const FORCED = new Set(["liquidation", "settlement", "adl", "venue"]);
export function origin(o) {
  if (!o.origin) return "–";
  return ORIGINS[o.origin] || o.origin.replaceAll("_", " ");
}
