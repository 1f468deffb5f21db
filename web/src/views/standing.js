// Standing orders (faste betalinger): the bank pays them on each due date. The orders are
// read live from users/{uid}/standingOrders; changes go through the callables.
import { collection, onSnapshot } from "firebase/firestore";
import { confirmOrderChange } from "../device.js";
import { action, fill, h, toast } from "../dom.js";
import { call, db, listenFailed } from "../firebase.js";
import { formatNOK, parseNOK, toInput } from "../money.js";
import { formatAccount } from "../norway.js";
import { session } from "../session.js";

const EVERY = { weekly: "every week", monthly: "every month" };

function orderRow(order) {
  const error = h("small", { class: "error" });
  const cancel = h("button", { class: "small danger", testid: "cancel-order" }, "Stop");
  cancel.addEventListener(
    "click",
    action(cancel, error, async () => {
      await call("standing_orders_cancel", { orderId: order.orderId });
      toast("Standing order stopped", "ok");
    }),
  );
  const amount = h("input", {
    class: "small",
    inputmode: "decimal",
    testid: "order-amount",
    "aria-label": "New amount in kroner",
    value: toInput(order.amount),
  });
  const change = h("button", { class: "small", testid: "change-order" }, "Change amount");
  change.addEventListener(
    "click",
    action(change, error, async () => {
      const ore = parseNOK(amount.value);
      if (!ore) throw new Error("Write the amount in kroner");
      const update = { orderId: order.orderId, amount: ore };
      if (ore > order.amount) {
        // a larger amount is confirmed again on this device
        const sca = await confirmOrderChange(session.user.uid, {
          orderId: order.orderId,
          fromAmount: order.amount,
          amount: ore,
          currency: order.currency || "NOK",
          toAccount: order.toAccount,
        });
        if (sca) update.sca = sca;
      }
      await call("standing_orders_update", update);
      toast("Standing order changed", "ok");
    }),
  );
  const last = order.lastRun;
  return h(
    "li",
    { class: "entry", testid: "standing-order", "data-status": order.status },
    h(
      "div",
      { class: "entry-main" },
      h(
        "strong",
        {},
        `To ${formatAccount(order.toAccount)}`,
        order.message ? ` · ${order.message}` : "",
        order.kid ? ` · KID ${order.kid}` : "",
      ),
      h(
        "small",
        { class: "muted" },
        `${formatNOK(order.amount)} ${EVERY[order.frequency] || order.frequency}`,
        order.status === "active" && order.nextDue ? ` · next ${order.nextDue}` : ` · ${order.status}`,
        order.endDate ? ` · until ${order.endDate}` : "",
        last ? ` · last: ${last.dueDate || last.date || ""} ${last.status || ""}` : "",
      ),
      order.status === "active" ? waitingNote(order.waiting) : null,
      order.status === "active" ? h("div", { class: "row" }, amount, change, cancel) : null,
      error,
    ),
  );
}

// a due date the account could not cover: tried again each banking day until `until`
export function waitingNote(waiting) {
  if (!waiting || !waiting.date) return null;
  return h(
    "p",
    { class: "error", testid: "waiting-for-funds" },
    `Not covered on ${waiting.date}: tried again each banking day until ${waiting.until || waiting.date}.`,
    " Add money to the account before then, or it is not paid.",
  );
}

export function standingOrdersView() {
  const box = h("ul", { class: "feed", testid: "standing-orders" }, h("li", { class: "muted" }, "Loading …"));
  const stop = onSnapshot(
    collection(db, `users/${session.user.uid}/standingOrders`),
    (snap) => {
      const orders = snap.docs
        .map((d) => ({ orderId: d.id, ...d.data() }))
        .sort(
          (a, b) =>
            (a.status === "active" ? 0 : 1) - (b.status === "active" ? 0 : 1) ||
            String(a.nextDue).localeCompare(String(b.nextDue)),
        );
      fill(
        box,
        ...(orders.length
          ? orders.map(orderRow)
          : [h("li", { class: "muted" }, "No standing orders. Make one under Pay: Repeat every week or month.")]),
      );
    },
    (err) => {
      fill(box, h("li", { class: "error" }, err.message));
      listenFailed(err);
    },
  );
  return {
    el: h(
      "section",
      { testid: "standing-orders-screen" },
      h("h2", {}, "Standing orders"),
      box,
      h("a", { class: "button primary", href: "#/pay" }, "New standing order"),
    ),
    stop,
  };
}
