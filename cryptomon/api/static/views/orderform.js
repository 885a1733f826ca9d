// The manual order form (trade scope): every order goes through the API's risk checks.
import { api, auth } from "../api.js";
import { el, message } from "../dom.js";

// a double click's second click can come after a quick answer (a local API answers in a few
// ms): the button stays off this long from the submit, so it never sends a second order
const DOUBLE_CLICK_MS = 700;

export function orderForm({ exchange = "", symbol = "", onPlaced = () => {} } = {}) {
  if (!auth.can("trade")) return null;
  const msg = el("div", { class: "msg", id: "order-msg" });
  const field = (label, input) => el("label", {}, label, input);
  const inputs = {
    exchange: el("input", { name: "exchange", value: exchange, size: 10, required: true, placeholder: "simulator" }),
    symbol: el("input", { name: "symbol", value: symbol, size: 14, required: true, placeholder: "BTC-USDT" }),
    side: el("select", { name: "side" }, el("option", { value: "buy", text: "buy" }), el("option", { value: "sell", text: "sell" })),
    type: el("select", { name: "type" }, el("option", { value: "market", text: "market" }), el("option", { value: "limit", text: "limit" })),
    amount: el("input", { name: "amount", inputmode: "decimal", size: 9, required: true, placeholder: "0.01" }),
    price: el("input", { name: "price", inputmode: "decimal", size: 10, placeholder: "limit only" }),
    stop_loss: el("input", { name: "stop_loss", inputmode: "decimal", size: 10, placeholder: "optional" }),
    take_profit: el("input", { name: "take_profit", inputmode: "decimal", size: 10, placeholder: "optional" }),
  };
  const submit = el("button", { type: "submit", text: "Place order" });
  const form = el("form", { class: "inline", id: "order-form" },
    exchange ? null : field("exchange", inputs.exchange),
    symbol ? null : field("symbol", inputs.symbol),
    field("side", inputs.side), field("type", inputs.type), field("amount (base)", inputs.amount),
    field("price", inputs.price), field("stop-loss", inputs.stop_loss), field("take-profit", inputs.take_profit),
    submit);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    // one order per submit: the button is off until the answer, so a double click (or Enter
    // pressed twice) does not send the order twice
    if (submit.disabled) return;
    const body = {
      exchange: inputs.exchange.value.trim(), symbol: inputs.symbol.value.trim(),
      side: inputs.side.value, type: inputs.type.value, amount: inputs.amount.value.trim(),
    };
    for (const k of ["price", "stop_loss", "take_profit"]) {
      const v = inputs[k].value.trim();
      if (v) body[k] = v;
    }
    if (body.type === "limit" && !body.price) {
      message(msg, "A limit order needs a price.");
      return;
    }
    submit.disabled = true;
    const sent = performance.now();
    try {
      const order = await api("/api/v1/trading/orders", { method: "POST", body });
      message(msg, `Order ${order.client_order_id}: ${order.state}`, true);
      onPlaced(order);
    } catch (err) {
      message(msg, `Order refused: ${err.message}`);
    } finally {
      const left = DOUBLE_CLICK_MS - (performance.now() - sent);
      if (left > 0) await new Promise((resolve) => setTimeout(resolve, left));
      submit.disabled = false;
    }
  });
  return el("div", {}, form, msg);
}
