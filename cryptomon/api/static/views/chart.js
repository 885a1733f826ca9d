// The market chart's plotly figure: candles + volume, anomaly markers, fills (entries and
// exits), open orders and SL/TP levels as horizontal lines. Pure: data in, figure out.
import { price, time } from "../format.js";

const MIN_SPAN_CANDLES = 20; // the chart shows at least this many 1-minute slots
const SEV_SIZE = { low: 8, medium: 10, high: 12, critical: 14 };
const SEV_COLOR = { low: "#8a96a3", medium: "#f0b429", high: "#ff8a3d", critical: "#ef5350" };
// an order in one of these states rests on no book: it gets no line on the chart
const CLOSED = new Set(["filled", "canceled", "rejected", "expired"]);

function nearestCandle(candles, ts) {
  let best = null;
  for (const c of candles) {
    if (c.open_time <= ts) best = c;
    else break;
  }
  return best || candles[candles.length - 1] || null;
}

// A horizontal line across the chart with its label at the left end: under a line above the
// last price, over one below it, so the top line's label is not hidden under the legend
// (above the plot) nor the bottom line's under the time axis.
function hline(y, color, label, dash = "dash", last = null) {
  const below = last !== null && y > last;
  return {
    type: "line", xref: "paper", x0: 0, x1: 1, yref: "y", y0: y, y1: y, name: label,
    line: { color, width: 1, dash },
    label: { text: label, textposition: "start", yanchor: below ? "top" : "bottom", font: { color, size: 10 } },
  };
}

// ``now`` (epoch seconds): where an empty chart's time axis ends (plotly's own default for no
// data is January 2000 to January 2001)
export function figure({ candles, anomalies, fills, orders, levels, position = null, now = null }) {
  const x = candles.map((c) => time(c.open_time));
  // plotly sizes candle bodies by the smallest step between x values: a lone candle gets an
  // empty slot a minute before it, so it is drawn one minute wide, not one millisecond
  const body = candles.length === 1
    ? [{ open_time: candles[0].open_time - 60, open: null, high: null, low: null, close: null }, candles[0]]
    : candles;
  const data = [
    { type: "candlestick", name: "price", x: body.map((c) => time(c.open_time)), open: body.map((c) => c.open),
      high: body.map((c) => c.high), low: body.map((c) => c.low), close: body.map((c) => c.close),
      increasing: { line: { color: "#26a69a" } }, decreasing: { line: { color: "#ef5350" } } },
    { type: "bar", name: "volume", x, y: candles.map((c) => c.volume), yaxis: "y2", width: 48_000, // ms of a 1m slot
      marker: { color: candles.map((c) => (c.close >= c.open ? "#26a69a55" : "#ef535055")) } },
  ];
  const marks = anomalies.map((a) => {
    const c = nearestCandle(candles, a.ts);
    return { a, y: c ? c.high * 1.0008 : null };
  }).filter((m) => m.y !== null);
  data.push({
    type: "scatter", mode: "markers", name: "anomalies", x: marks.map((m) => time(m.a.ts)), y: marks.map((m) => m.y),
    marker: { symbol: "diamond", size: marks.map((m) => SEV_SIZE[m.a.severity] || 9),
      color: marks.map((m) => SEV_COLOR[m.a.severity] || "#f0b429") },
    hovertext: marks.map((m) => `${m.a.kind} · ${m.a.severity}<br>${(m.a.reasons || []).join("<br>") || "no reasons"}`),
    hoverinfo: "text+x",
  });
  for (const side of ["buy", "sell"]) {
    const pts = fills.filter((fl) => fl.side === side);
    data.push({
      type: "scatter", mode: "markers", name: side === "buy" ? "buys" : "sells",
      x: pts.map((fl) => time(fl.ts)), y: pts.map((fl) => Number(fl.price)),
      marker: { symbol: side === "buy" ? "triangle-up" : "triangle-down", size: 12,
        color: side === "buy" ? "#4c9aff" : "#c77dff", line: { color: "#fff", width: 1 } },
      hovertext: pts.map((fl) => `${side} ${fl.amount} @ ${fl.price}<br>${fl.client_order_id}`),
      hoverinfo: "text+x",
    });
  }
  const shapes = [];
  const last = candles.length ? Number(candles[candles.length - 1].close) : null;
  for (const o of orders) {
    if (o.price && !CLOSED.has(o.state)) shapes.push(hline(Number(o.price), "#4c9aff", `${o.side} ${o.amount} @ ${o.price}`, "dot", last));
  }
  for (const l of levels) {
    if (l.stop_loss) shapes.push(hline(Number(l.stop_loss), "#ef5350", `SL ${l.stop_loss}`, "dash", last));
    if (l.take_profit) shapes.push(hline(Number(l.take_profit), "#26a69a", `TP ${l.take_profit}`, "dash", last));
    if (l.entry) shapes.push(hline(Number(l.entry), "#8a96a3", `entry ${l.entry}`, "solid", last));
  }
  if (position && position.liquidation_price) {
    // an estimate computed to many decimals (71573.89165): written as the position panel does
    shapes.push(hline(Number(position.liquidation_price), "#ff8a3d", `liquidation ${price(position.liquidation_price)}`, "dashdot", last));
  }
  const xaxis = { rangeslider: { visible: false }, gridcolor: "#2a323c", type: "date" };
  if (candles.length && candles.length < MIN_SPAN_CANDLES) {
    // a young market: a window of MIN_SPAN_CANDLES minutes, not one candle stretched across
    const last = candles[candles.length - 1].open_time;
    const first = Math.min(candles[0].open_time, last - (MIN_SPAN_CANDLES - 1) * 60);
    xaxis.range = [time(first - 30), time(last + 90)];
  } else if (!candles.length && now !== null) {
    // nothing stored yet: the last minutes, where the market's first live trades will appear
    xaxis.range = [time(now - MIN_SPAN_CANDLES * 60), time(now + 90)];
  }
  const layout = {
    paper_bgcolor: "#171d24", plot_bgcolor: "#171d24", font: { color: "#d8dee6", size: 11 },
    margin: { l: 50, r: 60, t: 30, b: 30 }, showlegend: true, legend: { orientation: "h", x: 0, y: 1.0, yanchor: "bottom" },
    xaxis,
    yaxis: { domain: [0.25, 1], gridcolor: "#2a323c", side: "right" },
    yaxis2: { domain: [0, 0.2], gridcolor: "#2a323c", side: "right" },
    shapes, uirevision: "keep", hovermode: "closest",
  };
  return { data, layout };
}
