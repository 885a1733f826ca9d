// Position rows, spot and contracts alike: side (long / short), size, entry and mark, PnL in
// the settle currency, and for perpetuals and futures the leverage, margin mode, initial
// margin, liquidation estimate and funding (received +, paid -). Spot rows show "–" there.
import { el } from "../dom.js";
import * as f from "../format.js";

// The currency of a position's PnL: the settle currency of a contract, else the quote.
export function settleOf(p) {
  if (p.settle) return p.settle;
  const parts = String(p.symbol || "").split("-");
  return parts.length > 1 ? parts[1] : "";
}

export function sideOf(p) {
  if (p.side) return p.side;
  const x = Number(p.amount);
  return x > 0 ? "long" : x < 0 ? "short" : "flat";
}

export const isContract = (p) => p.leverage !== null && p.leverage !== undefined;

function sideCell(p) {
  const side = sideOf(p);
  return el("span", { class: side === "long" ? "up" : side === "short" ? "down" : "muted", text: side });
}

function sizeCell(p) {
  if (!isContract(p)) return f.amount(p.amount);
  const contracts = p.contracts ?? Math.abs(Number(p.amount));
  // the base amount only where a contract is not one base unit (inverse, contract size)
  const differs = p.base_amount !== null && p.base_amount !== undefined && Number(p.base_amount) !== Number(contracts);
  return `${f.amount(contracts)} ct` + (differs ? ` (${f.amount(p.base_amount)} base)` : "");
}

function liquidationCell(p) {
  if (!isContract(p) || p.liquidation_price === null || p.liquidation_price === undefined) return "–";
  const mark = Number(p.mark_price);
  const liq = Number(p.liquidation_price);
  const gap = mark > 0 && liq > 0 ? Math.abs(mark - liq) / mark * 100 : NaN;
  // within 10 % of the mark: shown as a warning
  return el("span", { class: Number.isFinite(gap) && gap < 10 ? "state-halted" : "",
    title: "isolated-margin estimate (the venue decides); in brackets its distance from the mark" },
  f.price(liq), Number.isFinite(gap) ? el("span", { class: "muted", text: ` (${gap.toFixed(1)} %)` }) : "");
}

function marginCell(p) {
  if (!isContract(p)) return "–";
  return el("span", { title: `maintenance ${f.money(p.maintenance_margin, settleOf(p))}`, text: f.money(p.initial_margin, settleOf(p)) });
}

export function positionColumns() {
  return [
    { key: "symbol", label: "market", fmt: (p) => `${p.exchange} ${p.symbol}` },
    { key: "side", label: "side", fmt: sideCell },
    { key: "amount", label: "size", num: true, fmt: sizeCell },
    { key: "avg_price", label: "entry", num: true, fmt: (p) => f.price(p.avg_price) },
    { key: "mark_price", label: "mark", num: true, fmt: (p) => f.price(p.mark_price) },
    { key: "unrealized_pnl", label: "unrealized", num: true, fmt: (p) => f.signedMoney(p.unrealized_pnl, settleOf(p)), cls: (p) => f.sign(p.unrealized_pnl) },
    { key: "realized_pnl", label: "realized", num: true, fmt: (p) => f.signedMoney(p.realized_pnl, settleOf(p)), cls: (p) => f.sign(p.realized_pnl) },
    { key: "leverage", label: "leverage", num: true, fmt: (p) => (isContract(p) ? `${f.amount(p.leverage, 2)}×` : "spot") },
    { key: "margin_mode", label: "mode", title: "margin mode", fmt: (p) => p.margin_mode || "–" },
    { key: "initial_margin", label: "margin", num: true, fmt: marginCell, title: "initial margin (the maintenance margin on hover)" },
    { key: "liquidation_price", label: "liquidation", num: true, fmt: liquidationCell },
    { key: "funding", label: "funding", num: true, fmt: (p) => (isContract(p) ? f.signedMoney(p.funding ?? 0, settleOf(p)) : "–"), cls: (p) => f.sign(p.funding) },
    { key: "settle", label: "settle", fmt: (p) => settleOf(p) || "–" },
  ];
}

// The kv pairs of one position (the market view's position panel).
export function positionPairs(p) {
  const ccy = settleOf(p);
  const pairs = [
    ["side", sideOf(p), sideOf(p) === "long" ? "up" : "down"],
    ["size", sizeCell(p)],
    ["entry", f.price(p.avg_price)],
    ["mark", f.price(p.mark_price)],
    ["unrealized", f.signedMoney(p.unrealized_pnl, ccy), f.sign(p.unrealized_pnl)],
    ["realized", f.signedMoney(p.realized_pnl, ccy), f.sign(p.realized_pnl)],
  ];
  if (isContract(p)) {
    pairs.push(
      ["leverage", `${f.amount(p.leverage, 2)}× ${p.margin_mode || ""}`.trim()],
      ["margin", `${f.money(p.initial_margin, ccy)} initial · ${f.money(p.maintenance_margin, ccy)} maintenance`],
      ["liquidation", liquidationCell(p)],
      ["funding", f.signedMoney(p.funding ?? 0, ccy), f.sign(p.funding)],
      ["settle", ccy],
    );
  }
  return pairs;
}
